"""Record histories for the replay test: `python -m tests.workflows.record_histories [VERSION]`
(referral versions v1, v2, v3, v4 with patient outreach; prior-auth-v1 for the prior-authorization
pathway).

Run it when the referral pathway changes on purpose, and keep the old files too: cases started
under the old code must still replay (guard changes with `workflow.patched`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.audit import case_trail
from tests.workflows.ledger_replay import ledger_file, replayed_entries
from tests.workflows.referral_kit import (
    COORDINATOR,
    SUPERVISOR,
    open_referral,
    referral_input,
    running,
)
from workers.client import register_search_attributes
from workers.database import make_engine
from workers.histories import case_runs
from workflows.referral.models import (
    AddNote,
    Assign,
    Channel,
    MarkCompleted,
    MarkNoShow,
    MarkScheduled,
    OutreachOutcome,
    RecordOutreach,
    ReferralPolicy,
)
from workflows.referral.workflow import ReferralWorkflow

HISTORIES = Path(__file__).parent / "histories"


def test_server() -> str | None:
    local = Path(sys.executable).parent / "temporal-test-server"
    return str(local) if local.exists() else None


async def visit_and_report(
    env: WorkflowEnvironment, handle, appointment: str, *, visit_in: int, report_after: int
) -> None:
    """Scheduled `visit_in` days ahead, the report filed `report_after` days on: the case closes."""
    visit = await env.get_current_time() + timedelta(days=visit_in)
    await handle.execute_update(
        ReferralWorkflow.mark_scheduled,
        MarkScheduled(actor=COORDINATOR, appointment=appointment, appointment_at=visit),
    )
    await env.sleep(timedelta(days=report_after))
    await handle.execute_update(
        ReferralWorkflow.mark_completed,
        MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
    )
    await handle.result()


async def record(version: str) -> Path:
    if version.startswith("prior-auth-"):
        from tests.workflows.prior_auth_history import record_prior_auth

        return await record_prior_auth(HISTORIES / f"{version}.json", test_server())
    if version == "v3":
        return await record_continued()
    if version == "v4":
        from tests.workflows.outreach_history import record_with_outreach

        return await record_with_outreach(HISTORIES / f"referral-{version}.json", test_server())
    if version != "v1":
        from tests.workflows.ehr_history import record_with_ehr

        return await record_with_ehr(HISTORIES / f"referral-{version}.json", test_server())
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server()
    )
    async with env:
        await register_search_attributes(env.client)
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
        async with running(env.client, engine, "record"):
            handle = await open_referral(env.client, "record")
            await env.sleep(timedelta(days=4))  # unowned past its window: escalation
            await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
            await handle.execute_update(
                ReferralWorkflow.record_outreach,
                RecordOutreach(
                    actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.NO_ANSWER
                ),
            )
            await env.sleep(timedelta(days=13))  # reminder, then escalation
            visit = await env.get_current_time() + timedelta(days=2)
            await handle.execute_update(
                ReferralWorkflow.mark_scheduled,
                MarkScheduled(
                    actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit
                ),
            )
            await env.sleep(timedelta(days=3))
            await handle.execute_update(ReferralWorkflow.mark_no_show, MarkNoShow(actor=SUPERVISOR))
            await visit_and_report(env, handle, "Appointment/a2", visit_in=1, report_after=2)
            history = await handle.fetch_history()
    path = HISTORIES / f"referral-{version}.json"
    path.write_text(history.to_json())
    return path


async def record_continued() -> Path:
    """A case on today's care kit: replies before their ledger entries, structured hashes, and a
    history bound low enough (60 events) that it continues as new twice. Each run is one file,
    with the ledger entries it wrote beside it."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server()
    )
    async with env:
        await register_search_attributes(env.client)
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
        order = referral_input().model_copy(update={"policy": ReferralPolicy(history_events=60)})
        async with running(env.client, engine, "record"):
            handle = await open_referral(env.client, "record", order)
            await env.sleep(timedelta(days=4))  # unowned past its window: escalation
            await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
            for day in range(12):
                await handle.execute_update(
                    ReferralWorkflow.record_outreach,
                    RecordOutreach(
                        actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.REACHED
                    ),
                )
                await handle.execute_update(
                    ReferralWorkflow.add_note, AddNote(actor=COORDINATOR, text=f"day {day}")
                )
                await env.sleep(timedelta(days=1))
            await visit_and_report(env, handle, "Appointment/a1", visit_in=2, report_after=3)
            runs = await case_runs(env.client, handle.id)
        stored = {entry.seq: entry for entry in case_trail(engine, handle.id)}
    for number, history in enumerate(runs, start=1):
        path = HISTORIES / f"referral-v3-run{number}.json"
        path.write_text(history.to_json())
        seqs = [entry["seq"] for entry in await replayed_entries(path)]
        written = [
            stored[seq].model_dump(mode="json", exclude={"recorded_at", "seal"}) for seq in seqs
        ]
        ledger_file(path).write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    return HISTORIES / "referral-v3-run1.json"


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1")))
