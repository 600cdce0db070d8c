"""The referral's messages to its patient, on the care kit's outreach.

While the case awaits scheduling, the priority's cadence asks the patient to book (a no-show
back to scheduling starts a fresh one); once the visit is booked the cadence stops, and one
reminder goes out `remind_days_before` the visit (at once if it is sooner): "Reply 1 to confirm,
2 to talk to us". A "1" to the reminder confirms the appointment; a "2" anywhere asks for a call
back (the care kit opens the call task); any other answer goes on the timeline for a person. A
phone call recorded by the care team, or the visit booked, completes an open call task.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.care import errors
    from workflows.care.case import Case
    from workflows.care.messaging import Medium, ReplyKind, ReplyNews
    from workflows.care.models import OutreachAttempt
    from workflows.care.outreach import Message, Outreach
    from workflows.referral import messages
    from workflows.referral.models import CLOSED, DAY, ReferralInput, Stage

CONFIRMED = "appointment_confirmed_at"  # the case's moment: the patient confirmed the visit
OUTREACH_STAGES = (Stage.AWAITING_SCHEDULING, Stage.SCHEDULED)  # where a cadence may run


class ReferralOutreach(Outreach):
    def __init__(self, case: Case, order: ReferralInput) -> None:
        super().__init__(
            case, enabled=order.outreach is not None, compose=self.compose, on_reply=self.answered
        )
        self.input = order
        self.plan = order.outreach
        if order.snapshot is not None:
            self.resume(order.snapshot)
        self.stage = case.stage  # the stage the cadence last followed

    def begin(self) -> None:
        """Run the cadence and follow the case's stages with it; call once from the run."""
        if self.enabled:
            super().begin()
            asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.case.stage != self.stage)
            self.stage = Stage(self.case.stage)
            self.entered(self.stage)

    def entered(self, stage: Stage) -> None:
        policy, outreach = self.input.policy, self
        if stage == Stage.AWAITING_SCHEDULING:
            outreach.start(messages.SCHEDULE, policy.cadences[self.input.priority])
        elif stage == Stage.SCHEDULED:
            outreach.stop("scheduled")
            outreach.call_done("the appointment is booked")
            visit = self.case.moments["appointment_at"]
            at = max(visit - policy.remind_days_before * DAY, workflow.now())
            outreach.start(messages.REMINDER, policy.reminder, at=at)
        elif stage in CLOSED:
            outreach.stop("case closed")
        else:
            outreach.stop(f"case {stage.value}")

    def compose(self, kind: str, language: str, channel: Medium) -> Message:
        assert self.plan is not None
        return messages.render(
            kind,
            language,
            channel,
            sender=self.plan.sender,
            phone=self.plan.callback_phone,
            appointment_at=self.case.moments.get("appointment_at"),
            timezone=self.case.calendar.timezone,
        )

    def answered(self, news: ReplyNews, attempt: OutreachAttempt | None) -> str | None:
        """What a patient's answer means for the referral (the REPLY event's summary)."""
        if news.kind == ReplyKind.CONFIRM and self.case.stage == Stage.SCHEDULED:
            if attempt is None or attempt.kind == messages.REMINDER:
                self.case.moments[CONFIRMED] = workflow.now()
                return "Patient confirmed the appointment"
        if news.kind == ReplyKind.CALL_BACK:
            return "The patient asked for a call back"
        return None

    def phoned(self) -> None:
        """The care team recorded a phone call: an open call task is done."""
        self.call_done("the care team called the patient")

    # -- checks for the pause and resume actions ---------------------------------------------

    def check_pause(self) -> None:
        self._check_enabled()
        if not self.running:
            state = self.state.state
            raise errors.not_allowed(f"Outreach is {state}: only running outreach can be paused")

    def check_resume(self) -> None:
        self._check_enabled()
        if not self.paused:
            state = self.state.state
            raise errors.not_allowed(f"Outreach is {state}: only paused outreach can be resumed")

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise errors.not_allowed("This case sends no messages to the patient")
