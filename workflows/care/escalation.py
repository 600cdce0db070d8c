"""A case's ladder: reminders and escalations as its deadline nears and passes, and the staff
notices they send. Mixed into `Case` (see case.py), whose state and moves it uses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.staff import StaffActivities
    from workflows.care import queues
    from workflows.care.ladder import Escalate, Step
    from workflows.care.models import SYSTEM, EventKind, Role, StaffNotice

NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)
)
# Cases started before this record a reminder or escalation only once its notice is delivered,
# retrying for as long as the staff inbox is down; since, the event is recorded at once and the
# notice delivered beside it, for at most NOTICE_WITHIN.
NOTICES_BESIDE_PATCH = "notices-beside-the-case"
NOTICE_WITHIN = timedelta(hours=1)


class Escalation:
    deliveries: set[asyncio.Task[None]]  # notices being delivered (set up by Case)

    async def milestone(self, ladder: Iterable[Step]) -> None:
        """Hold the current stage until it changes, reminding and escalating towards its deadline.

        Steps whose time has already passed when the milestone starts are skipped, except an
        escalation, which is what a late start most needs; a step already taken in this visit of
        the stage (before the case continued as new) is not taken again. Returns early when the
        case is due to continue as new.
        """
        stage, due = self.stage, self.due_at
        if due is None:
            await self.wait(lambda: self.stage != stage)
            return
        start = workflow.now()
        steps = sorted(
            ((step.at(due, self.calendar), step) for step in ladder), key=lambda pair: pair[0]
        )
        for at, step in steps:
            taken = f"{step.kind.value}@{at.isoformat()}"
            if taken in self.climbed or (at <= start and not isinstance(step, Escalate)):
                continue
            if not await self.wait_until(at, stage):
                return
            self.climbed.append(taken)
            await self._climb(step)
        await self.wait(lambda: self.stage != stage)

    async def wait_until(self, moment: datetime, stage: str) -> bool:
        """Wait for `moment` while the case stays in `stage`; False if the stage changed first
        (or the case is due to continue as new)."""
        delay = (moment - workflow.now()).total_seconds()
        if delay > 0:
            await self.wait(lambda: self.stage != stage, within=timedelta(seconds=delay))
        return self.stage == stage and not self.continuing

    def notify(self, notice: StaffNotice) -> None:
        """Deliver a notice to the staff inbox beside the case: the case goes on meanwhile, and a
        notice the inbox cannot take within NOTICE_WITHIN goes on the timeline as undelivered."""
        job = asyncio.create_task(self._deliver(notice))
        self.deliveries.add(job)
        job.add_done_callback(self.deliveries.discard)

    async def _deliver(self, notice: StaffNotice) -> None:
        try:
            await workflow.execute_activity_method(
                StaffActivities.notify,
                notice,
                task_queue=queues.messaging(),
                schedule_to_close_timeout=NOTICE_WITHIN,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError:
            self.count("undelivered_notices")
            self.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"The {notice.kind.value} notice could not be delivered to the staff inbox",
                details={"notice": notice.kind.value},
            )

    async def _climb(self, step: Step) -> None:
        if isinstance(step, Escalate):
            self.stalled = True
            self._publish()
            notice = StaffNotice(
                case_id=self.case_id,
                kind=EventKind.ESCALATED,
                team=self.team,
                role=step.to,
                message=f"Case {self.case_id} is past due while {self.stage}",
                due_at=self.due_at,
            )
            summary = f"Escalated to the {self.team} {step.to.value}: past due while {self.stage}"
        else:
            notice = StaffNotice(
                case_id=self.case_id,
                kind=EventKind.REMINDED,
                team=self.team,
                role=Role.COORDINATOR,
                user_id=self.owner,
                message=f"Case {self.case_id} is due soon while {self.stage}",
                due_at=self.due_at,
            )
            summary = f"Reminded {self.owner or 'the ' + self.team + ' team'}: due soon"
        details = {"due_at": self.due_at.isoformat() if self.due_at else ""}
        if self.notices_beside:
            self.record(step.kind, SYSTEM, summary, details=details)
            self.notify(notice)
            return
        await workflow.execute_activity_method(
            StaffActivities.notify,
            notice,
            task_queue=queues.messaging(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=NOTIFY_RETRY,
        )
        self.record(step.kind, SYSTEM, summary, details=details)
