"""The worker process: polls the task queue and runs every pathway and activity."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.fhir.client import FhirClient
from workers import registry
from workers.client import connect, prometheus_runtime, register_search_attributes
from workers.database import make_engine
from workers.schedules import ensure_schedules
from workers.settings import Settings

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str,
    max_cached_workflows: int = 500,
    fhir: FhirClient | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=registry.WORKFLOWS,
        activities=registry.activities(engine, fhir),
        max_cached_workflows=max_cached_workflows,
    )


def cache_bytecode(settings: Settings) -> None:
    """Temporal's sandbox re-imports workflow modules for every new workflow; with bytecode
    writing disabled (PYTHONDONTWRITEBYTECODE) each one recompiles them. Cache under .data/."""
    sys.dont_write_bytecode = False
    if sys.pycache_prefix is None:
        sys.pycache_prefix = str(settings.data_dir.resolve() / "pycache")


async def run(settings: Settings) -> None:
    cache_bytecode(settings)
    runtime = (
        prometheus_runtime(settings.worker_metrics_address)
        if settings.worker_metrics_address
        else None
    )
    client = await connect(runtime=runtime)
    await register_search_attributes(client)
    await ensure_schedules(client, settings)
    engine = make_engine(settings.database_url)
    worker = build_worker(
        client,
        engine,
        task_queue=settings.temporal_task_queue,
        max_cached_workflows=settings.max_cached_workflows,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker_started", task_queue=settings.temporal_task_queue, pid=os.getpid())
    async with worker:
        await stop.wait()
    log.info("worker_stopped")
