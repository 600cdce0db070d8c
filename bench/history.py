"""(g) What a case writes to its Temporal history as it lives: events and bytes after N care-team
actions, against a minimal workflow taking the same number of raw updates on the same server.

Before the care kit answered actions with a small acknowledgement and continued as new, 100
add-note actions left 833 events and 1,137 KB in one referral's history (each update result
carried the whole case, timeline included; measured on the time-skipping test server, where the
same run of today's code leaves 838 events and 96 KB): kept here as the figure to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowHistory

from bench import orders
from bench.baseline import UpdateWorkflow
from bench.report import Row
from bench.stack import BASELINE_QUEUE
from workers.histories import case_runs
from workers.settings import Settings
from workflows.care.models import Actor, Role
from workflows.referral.models import AddNote
from workflows.referral.workflow import ReferralWorkflow

KB = 1024
BEFORE = {"events": 833, "kilobytes": 1137}  # 100 actions, one run, measured before the change


@dataclass
class Growth:
    actions: int
    runs: int
    events: int  # over every run of the case
    largest_run_events: int
    kilobytes: float
    largest_run_kilobytes: float
    raw_events: int
    raw_kilobytes: float


async def growth(client: Client, settings: Settings, run: str, actions: int) -> Growth:
    """One referral case opened as the API opens it, then `actions` add-notes; one minimal
    workflow taking as many raw updates."""
    index = 900_000 + actions
    await orders.open_direct(client, settings, run, index)
    case = client.get_workflow_handle(orders.case_id(run, index))
    raw = await client.start_workflow(
        UpdateWorkflow.run, id=f"history-{run}-{actions}", task_queue=BASELINE_QUEUE
    )
    actor = Actor(user_id="bench-cora", role=Role.COORDINATOR, team="cardiology")
    for i in range(actions):
        await case.execute_update(ReferralWorkflow.add_note, AddNote(actor=actor, text=f"n{i}"))
        await raw.execute_update(UpdateWorkflow.add_note, f"n{i}")
    await raw.signal(UpdateWorkflow.finish)
    await raw.result()
    runs = await case_runs(client, case.id)
    raw_history = await raw.fetch_history()
    return Growth(
        actions=actions,
        runs=len(runs),
        events=sum(len(h.events) for h in runs),
        largest_run_events=max(len(h.events) for h in runs),
        kilobytes=sum(_size(h) for h in runs) / KB,
        largest_run_kilobytes=max(_size(h) for h in runs) / KB,
        raw_events=len(raw_history.events),
        raw_kilobytes=_size(raw_history) / KB,
    )


def rows(measured: list[Growth]) -> list[Row]:
    out = []
    for g in measured:
        label = f"(g) history after {g.actions} actions"
        out += [
            Row(f"{label}: events (all runs / largest run)", g.events, f"/ {g.largest_run_events}"),
            Row(f"{label}: KB (all runs)", g.kilobytes, "KB"),
            Row(f"{label}: KB, largest run", g.largest_run_kilobytes, "KB", ("<=", 1024.0)),
            Row(f"{label}: runs (continued as new)", g.runs, ""),
            Row(f"{label}: raw updates, events / KB", g.raw_events, f"/ {g.raw_kilobytes:.0f} KB"),
            Row(f"{label}: KB per action, case / raw", g.kilobytes / g.raw_kilobytes, "x"),
        ]
        if g.actions == 100:
            out.append(
                Row(
                    f"{label}: KB now / before ({BEFORE['kilobytes']} KB)",
                    g.kilobytes / BEFORE["kilobytes"],
                    "x",
                    ("<=", 0.5),
                )
            )
    return out


def _size(history: WorkflowHistory) -> int:
    return sum(event.ByteSize() for event in history.events)
