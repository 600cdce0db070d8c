"""The worker process: polls the deployment's task queues (workflow tasks, EHR activities,
messaging activities; see workflows/care/queues.py), all of them or the kinds it is told."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

import httpx
import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from activities.fhir.client import FhirClient
from activities.payer.subscription import ensure_subscription
from workers import registry
from workers.client import connect, prometheus_runtime, register_search_attributes
from workers.database import make_engine
from workers.schedules import ensure_schedules
from workers.settings import Settings
from workflows.care.queues import QueueKind, queue_name

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerTuning:
    """Cache, slots and pollers of each worker; the EHR queue's rate (None: no limit); how long
    running activities may take to finish once the worker is told to stop."""

    max_cached_workflows: int = 500
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activities: int = 100
    workflow_task_pollers: int = 5
    activity_task_pollers: int = 5
    ehr_activities_per_second: float | None = None
    # The SDK's default (cancel at once) for workers built in process; `run` reads the setting.
    shutdown_grace: timedelta = timedelta(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerTuning:
        return cls(
            max_cached_workflows=settings.max_cached_workflows,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
            max_concurrent_activities=settings.max_concurrent_activities,
            workflow_task_pollers=settings.workflow_task_pollers,
            activity_task_pollers=settings.activity_task_pollers,
            ehr_activities_per_second=settings.ehr_activities_per_second or None,
            shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        )


class Workers:
    """One Temporal worker per task queue, run together: `async with build_worker(...):`."""

    def __init__(self, workers: dict[QueueKind, Worker]) -> None:
        self.workers = workers
        self._running = AsyncExitStack()

    async def __aenter__(self) -> Workers:
        async with AsyncExitStack() as starting:
            for worker in self.workers.values():
                await starting.enter_async_context(worker)
            self._running = starting.pop_all()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool | None:
        # Stop them all at once, so running activities get one grace period, not one per queue.
        await asyncio.gather(*(worker.shutdown() for worker in self.workers.values()))
        return await self._running.__aexit__(kind, error, trace)


def build_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str,
    queues: Iterable[QueueKind] = tuple(QueueKind),
    tuning: WorkerTuning = WorkerTuning(),
    fhir: FhirClient | None = None,
    payer_url: str | None = None,
) -> Workers:
    """Workers for the kinds of queue asked for (all by default) of the deployment whose task
    queue is `task_queue`; `fhir` and `payer_url` in place of the EHR and payer of the settings."""
    by_queue = registry.activities(engine, fhir, payer_url)
    slots = {
        "max_concurrent_activities": tuning.max_concurrent_activities,
        "activity_task_poller_behavior": PollerBehaviorSimpleMaximum(tuning.activity_task_pollers),
        "graceful_shutdown_timeout": tuning.shutdown_grace,
    }
    workers: dict[QueueKind, Worker] = {}
    for kind in dict.fromkeys(queues):
        if kind == QueueKind.WORKFLOWS:
            # Every activity is registered here too: one scheduled on this queue before the
            # queues were split still finds a worker; the workflows send new ones to their own.
            workers[kind] = Worker(
                client,
                task_queue=queue_name(task_queue, kind),
                workflows=registry.WORKFLOWS,
                activities=[activity for group in by_queue.values() for activity in group],
                max_cached_workflows=tuning.max_cached_workflows,
                max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
                workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(
                    tuning.workflow_task_pollers
                ),
                **slots,
            )
        else:
            limit = tuning.ehr_activities_per_second if kind == QueueKind.EHR else None
            workers[kind] = Worker(
                client,
                task_queue=queue_name(task_queue, kind),
                activities=by_queue[kind],
                max_task_queue_activities_per_second=limit,
                **slots,
            )
    return Workers(workers)


def cache_bytecode(settings: Settings) -> None:
    """Temporal's sandbox re-imports workflow modules for every new workflow; with bytecode
    writing disabled (PYTHONDONTWRITEBYTECODE) each one recompiles them. Cache under .data/."""
    sys.dont_write_bytecode = False
    if sys.pycache_prefix is None:
        sys.pycache_prefix = str(settings.data_dir.resolve() / "pycache")


async def _subscribe_to_payer(settings: Settings) -> None:
    """The one PAS Subscription of this system at the payer, so pended requests are told their
    decision. A payer that does not answer now is no reason not to work: its pended cases still
    inquire once at their deadline, and the next worker start subscribes."""
    try:
        await ensure_subscription(settings)
    except (httpx.HTTPError, OSError) as err:
        log.warning("payer_subscription_failed", error=type(err).__name__)


async def run(settings: Settings, queues: Iterable[QueueKind] = tuple(QueueKind)) -> None:
    queues = list(dict.fromkeys(queues))
    if QueueKind.WORKFLOWS in queues:
        cache_bytecode(settings)
    runtime = (
        prometheus_runtime(settings.worker_metrics_address)
        if settings.worker_metrics_address
        else None
    )
    client = await connect(runtime=runtime)
    await register_search_attributes(client)
    await ensure_schedules(client, settings)
    if QueueKind.EHR in queues:
        await _subscribe_to_payer(settings)
    engine = make_engine(settings.database_url)
    worker = build_worker(
        client,
        engine,
        task_queue=settings.temporal_task_queue,
        queues=queues,
        tuning=WorkerTuning.from_settings(settings),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker_started",
        task_queues=[queue_name(settings.temporal_task_queue, kind) for kind in queues],
        pid=os.getpid(),
    )
    async with worker:
        await stop.wait()
        # Leaving the block stops polling, then waits up to the grace for running activities.
        log.info("worker_stopping", grace_seconds=settings.worker_shutdown_grace_seconds)
    engine.dispose()
    log.info("worker_stopped")


def serve(settings: Settings, queues: Iterable[QueueKind] = tuple(QueueKind)) -> None:
    """The worker process: run until SIGTERM or SIGINT, then leave."""
    asyncio.run(run(settings, queues))
    leave()


def leave() -> None:
    """End the stopped worker's process without finalizing the interpreter. The SDK's Rust
    threads may outlive the event loop, and one that touches Python while the interpreter
    finalizes aborts it (SIGABRT, "PyGILState_Release"), so a clean stop would read as a crash
    to a supervisor. Everything is stopped and flushed by now."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
