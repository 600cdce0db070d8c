"""Detection: on a Temporal Schedule, find what changed in the EHR and open or signal the cases.

Each run searches from the watermark the previous run returned (the schedule hands a run its
predecessor's result), so nothing is searched twice and nothing is missed between runs.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.fhir.intake import ChangeSearch, Detected, IntakeActivities
    from workflows.care import queues


class Detection(BaseModel):
    categories: list[str] = Field(default_factory=list)  # ServiceRequest categories; [] any
    first_lookback_hours: int = 24 * 30  # how far back the very first run looks
    since: Detected | None = None  # a watermark to start from, instead of the last run's


@workflow.defn(name="EhrDetection")
class EhrDetectionWorkflow:
    @workflow.run
    async def run(self, detection: Detection) -> Detected:
        last = detection.since
        if last is None and workflow.has_last_completion_result():
            last = workflow.get_last_completion_result(Detected)
        search = ChangeSearch(
            since=last.until
            if last
            else workflow.now() - timedelta(hours=detection.first_lookback_hours),
            taken_at_since=last.taken_at_until if last else [],
            categories=detection.categories,
        )
        return await workflow.execute_activity_method(
            IntakeActivities.detect_changes,
            search,
            task_queue=queues.ehr(),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2)
            ),
        )
