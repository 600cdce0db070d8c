"""Evaluate the decision triggers (run by a Temporal Schedule) and tell supervisors of changes."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.staff import StaffActivities
    from activities.triggers import TriggerActivities
    from workflows.care.models import EventKind, Role, StaffNotice
    from workflows.triggers.models import Evaluation, EvaluationResult

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=5
)


@workflow.defn(name="DecisionTriggers")
class DecisionTriggersWorkflow:
    @workflow.run
    async def run(self, evaluation: Evaluation) -> EvaluationResult:
        evaluation = evaluation.model_copy(update={"now": workflow.now()})
        result = await workflow.execute_activity_method(
            TriggerActivities.evaluate,
            evaluation,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        for change in result.changes:
            state = "crossed" if change.raised else "is back under"
            await workflow.execute_activity_method(
                StaffActivities.notify,
                StaffNotice(
                    case_id=change.alert_id,
                    team=change.team,
                    role=Role.SUPERVISOR,
                    kind=EventKind.EXCEPTION_RAISED
                    if change.raised
                    else EventKind.EXCEPTION_CLEARED,
                    message=f"{change.rule} {state} its threshold for team "
                    f"{change.team}: {change.value:g} (above {change.above:g})",
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        return result
