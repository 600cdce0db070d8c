"""A worker as its own process, for tests that kill one: `python -m tests.workflows.worker_process
ADDRESS TASK_QUEUE DATABASE_URL`. Unlike `followthrough worker` it schedules nothing, so it also
runs against the time-skipping test server."""

from __future__ import annotations

import asyncio
import sys

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from workers.database import make_engine
from workers.worker import build_worker


async def main(address: str, task_queue: str, database_url: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    async with build_worker(client, make_engine(database_url), task_queue=task_queue):
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
