"""A case's Temporal history across its runs: a long-lived case continues as new now and then."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHistory


async def case_runs(client: Client, case_id: str) -> list[WorkflowHistory]:
    """Every run of the case, oldest first, following each run back to the one it continued."""
    histories = [await client.get_workflow_handle(case_id).fetch_history()]  # the newest run
    while True:
        started = histories[0].events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return histories
        run = client.get_workflow_handle(case_id, run_id=started.continued_execution_run_id)
        histories.insert(0, await run.fetch_history())
