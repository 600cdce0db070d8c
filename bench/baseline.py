"""The raw-Temporal yardstick: the least a workflow with one activity, or one update, can cost.

Run as its own worker process (`python -m bench.baseline --task-queue Q`), as the referral worker
is, so both pay the same process, sandbox and polling costs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

BASELINE_WORKFLOW = "BenchBaseline"
UPDATE_WORKFLOW = "BenchUpdate"


@activity.defn(name="bench_echo")
async def echo(text: str) -> str:
    return text


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    """Start, one activity, complete: the shortest round trip that still does work."""

    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name=UPDATE_WORKFLOW)
class UpdateWorkflow:
    """Waits for updates: the raw cost of the update round trip a care-team action makes."""

    def __init__(self) -> None:
        self.notes = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.notes

    @workflow.update
    def add_note(self, text: str) -> int:
        self.notes += 1
        return self.notes

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def serve(task_queue: str) -> None:
    # Imported here so the workflow module above stays free of non-deterministic imports.
    from workers.client import connect

    client = await connect()
    # The same cache size as the referral worker's default, so neither worker gets an edge.
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineWorkflow, UpdateWorkflow],
        activities=[echo],
        max_cached_workflows=1000,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's baseline worker")
    parser.add_argument("--task-queue", required=True)
    asyncio.run(serve(parser.parse_args().task_queue))


if __name__ == "__main__":
    main()
