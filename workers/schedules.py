"""Temporal Schedules the worker keeps in place: created when missing, updated when changed."""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)

from workers.settings import Settings
from workflows.detection.workflow import Detection, EhrDetectionWorkflow
from workflows.triggers.models import Evaluation
from workflows.triggers.workflow import DecisionTriggersWorkflow

log = structlog.get_logger(__name__)


def triggers_schedule(settings: Settings) -> Schedule:
    evaluation = Evaluation(rules=settings.trigger_rules, calendar=settings.calendar)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DecisionTriggersWorkflow.run,
            evaluation,
            id=f"{settings.temporal_task_queue}-decision-triggers",
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(minutes=settings.trigger_every_minutes))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def keep_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("schedule_created", schedule_id=schedule_id)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(
            lambda _: ScheduleUpdate(schedule=schedule)
        )


def detection_schedule(settings: Settings) -> Schedule:
    """Search the EHR for new and changed orders every few minutes; one run at a time."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            EhrDetectionWorkflow.run,
            Detection(categories=settings.ehr_order_categories),
            id=f"{settings.temporal_task_queue}-ehr-detection",
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(minutes=settings.ehr_detection_minutes))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    # One schedule per deployment (task queue), so deployments sharing a namespace stay apart.
    await keep_schedule(client, triggers_schedule_id(settings), triggers_schedule(settings))
    if settings.ehr_detection_minutes > 0:
        detection_id = f"{settings.temporal_task_queue}-ehr-detection"
        await keep_schedule(client, detection_id, detection_schedule(settings))


def triggers_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue}-decision-triggers"
