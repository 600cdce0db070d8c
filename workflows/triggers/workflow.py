"""Evaluate the decision triggers (run by a Temporal Schedule); supervisors hear of each change.

The evaluation writes each alert's change, its ledger entry and its supervisor's notice together,
so a retried evaluation can neither lose nor repeat them. Runs started before that kept sending
the notices themselves, one activity per change, and still do when they replay.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.staff import StaffActivities
    from activities.triggers import TriggerActivities
    from workflows.care.models import EventKind, Role, StaffNotice
    from workflows.triggers.models import Evaluation, EvaluationResult, TriggerChange

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=5
)
NOTICES_WITH_EVALUATION = "alert-notices-written-with-evaluation"


@workflow.defn(name="DecisionTriggers")
class DecisionTriggersWorkflow:
    @workflow.run
    async def run(self, evaluation: Evaluation) -> EvaluationResult:
        notices_written = workflow.patched(NOTICES_WITH_EVALUATION)
        evaluation = evaluation.model_copy(update={"now": workflow.now()})
        result = await workflow.execute_activity_method(
            TriggerActivities.evaluate,
            evaluation,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        if not notices_written:
            for change in result.changes:
                await self._notify_before_patch(change)
        return result

    async def _notify_before_patch(self, change: TriggerChange) -> None:
        state = "crossed" if change.raised else "is back under"
        await workflow.execute_activity_method(
            StaffActivities.notify,
            StaffNotice(
                case_id=change.alert_id,
                team=change.team,
                role=Role.SUPERVISOR,
                kind=EventKind.EXCEPTION_RAISED if change.raised else EventKind.EXCEPTION_CLEARED,
                message=f"{change.rule} {state} its threshold for team "
                f"{change.team}: {change.value:g} (above {change.above:g})",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
