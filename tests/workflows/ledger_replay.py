"""The ledger entries a recorded history writes, captured while it replays.

A local activity's input is not kept in the history, so the entries a case handed to the ledger
are captured from the replaying workflow itself: the replay test compares what today's code
computes with what the recording wrote (kept beside each history as `<name>.ledger.json`).
`python -m tests.workflows.ledger_replay NAME` writes that file for a history recorded on the
code of its day; run it on that code, never on code that changed the hashes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workflows.pathways import PATHWAYS

HISTORIES = Path(__file__).parent / "histories"
LEDGER_ACTIVITY = "append_ledger"


class _Capture(Interceptor):
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        entries = self.entries

        class Outbound(WorkflowOutboundInterceptor):
            def start_local_activity(self, input: StartLocalActivityInput) -> Any:
                if input.activity == LEDGER_ACTIVITY:
                    with workflow.unsafe.sandbox_unrestricted():
                        for entry in input.args[0].entries:
                            entries.append(entry.model_dump(mode="json"))
                return super().start_local_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


async def replayed_entries(path: Path) -> list[dict[str, Any]]:
    """Every ledger entry the history's workflow hands to the ledger, replayed on today's code,
    once each (a retried batch is counted once, as the ledger stores it)."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    capture = _Capture()
    replayer = Replayer(
        workflows=[pathway.workflow for pathway in PATHWAYS],
        data_converter=pydantic_data_converter,
        interceptors=[capture],
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
    seen: dict[int, dict[str, Any]] = {}
    for entry in capture.entries:
        seen.setdefault(entry["seq"], entry)
    return [seen[seq] for seq in sorted(seen)]


def ledger_file(path: Path) -> Path:
    return path.with_name(path.stem + ".ledger.json")


async def write(name: str) -> Path:
    path = HISTORIES / f"{name}.json"
    entries = await replayed_entries(path)
    out = ledger_file(path)
    out.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    print(asyncio.run(write(sys.argv[1])))
