"""Referral loop closure: from an order to an appointment kept and its report back to the referrer.

unassigned -> awaiting_scheduling -> scheduled -> awaiting_result -> completed, with cancelled,
patient_declined and unable_to_reach as the other ways out. A no-show goes back to scheduling.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import EhrEvent
    from workflows.care import errors
    from workflows.care.case import Case
    from workflows.care.ehr import EhrLink
    from workflows.care.ladder import Step, escalate, remind
    from workflows.care.messaging import DELIVERY_SIGNAL, REPLY_SIGNAL, DeliveryNews, ReplyNews
    from workflows.care.models import (
        SYSTEM,
        ActionAck,
        Actor,
        CaseDetail,
        CaseOutcome,
        CaseSnapshot,
        EventKind,
        Role,
    )
    from workflows.prior_auth.models import AuthorizationNews
    from workflows.referral.claims import AUTHORIZED, Claims
    from workflows.referral.models import (
        CLOSED,
        TASK_STATES,
        AddNote,
        Assign,
        Cancel,
        Channel,
        MarkCompleted,
        MarkNoShow,
        MarkScheduled,
        OpenCase,
        OutreachOutcome,
        PauseOutreach,
        RecordDocuments,
        RecordOutreach,
        ReferralInput,
        ResumeOutreach,
        Stage,
    )
    from workflows.referral.outreach import OUTREACH_STAGES, ReferralOutreach

PATHWAY_VERSION = "2026.11"  # named in audit exports; bump when the protocol changes
UNSUCCESSFUL = {
    OutreachOutcome.NO_ANSWER,
    OutreachOutcome.LEFT_MESSAGE,
    OutreachOutcome.WRONG_NUMBER,
}


@workflow.defn(name="Referral")
class ReferralWorkflow:
    @workflow.init
    def __init__(self, order: ReferralInput) -> None:
        self.input = order
        self.policy = order.policy
        self.priority = order.priority
        self.case = Case(
            case_id=order.case_id,
            case_type="referral",
            stage=Stage.UNASSIGNED,
            team=order.team,
            priority=order.priority,
            location=order.location,
            order=order.order,
            calendar=order.calendar,
            task_states=TASK_STATES,
            closed_stages=CLOSED,
            deadline=self.deadline,
            pathway="referral",
            pathway_version=PATHWAY_VERSION,
            snapshot=order.snapshot,
            history_events=order.policy.history_events,
        )
        self.opened_by_request = bool(order.snapshot and order.snapshot.opened_by_request)
        self.ehr = EhrLink(self.case, enabled=order.ehr)
        if order.snapshot:
            self.ehr.resume(order.snapshot)
        self.claims = Claims(self.case, self.ehr)
        self.outreach = ReferralOutreach(self.case, order)
        if order.authorization and order.snapshot is None:
            self.case.references["authorization"] = order.authorization

    @workflow.run
    async def run(self, order: ReferralInput) -> CaseOutcome:
        case = self.case
        case.keep_trail()
        self.ehr.start(on_event=self.claims.ehr_event)
        self.outreach.begin()
        while not case.closed and not case.continuing:
            if case.stage == Stage.SCHEDULED:
                if await case.wait_until(case.moments["appointment_at"], Stage.SCHEDULED):
                    case.move_to(
                        Stage.AWAITING_RESULT,
                        SYSTEM,
                        "Appointment time passed; awaiting the result or report",
                    )
            else:
                await case.milestone(self.ladder(case.stage))
        if not case.closed:
            await case.continue_as_new(
                self.next_run, ready=lambda: self.ehr.quiet and self.outreach.quiet
            )
        await self.ehr.settled()
        await self.outreach.close()
        await case.settle()
        return case.outcome()

    def next_run(self, snapshot: CaseSnapshot) -> ReferralInput:
        snapshot = self.outreach.carry(self.ehr.carry(snapshot))
        snapshot.opened_by_request = self.opened_by_request
        return self.input.model_copy(update={"snapshot": snapshot})

    def ladder(self, stage: Stage) -> list[Step]:
        """Before a deadline the owner is reminded; when it passes, the team's supervisor is told.
        Unowned work has nobody to remind, so it goes straight to the supervisor."""
        if stage == Stage.UNASSIGNED:
            return [escalate(Role.SUPERVISOR)]
        return [remind(before_due=self.policy.remind_before), escalate(Role.SUPERVISOR)]

    def deadline(self, case: Case) -> datetime | None:
        """When the current stage must be done by, counted in business days."""
        policy, calendar = self.policy, self.input.calendar
        if case.stage == Stage.UNASSIGNED:
            return calendar.close_of_business(case.opened_at, policy.claim_within[self.priority])
        if case.stage == Stage.AWAITING_SCHEDULING:
            # The window runs from the order, or from the missed visit when rescheduling.
            since = case.moments.get("no_show_at", case.opened_at)
            return calendar.close_of_business(since, policy.schedule_within[self.priority])
        if case.stage == Stage.AWAITING_RESULT:
            return calendar.close_of_business(case.moments["appointment_at"], policy.report_within)
        return None

    @workflow.query
    def detail(self) -> CaseDetail:
        detail = self.case.detail()
        detail.outreach = self.outreach.view()
        return detail

    # -- care-team actions --------------------------------------------------------------------

    @workflow.update
    def open_case(self, request: OpenCase) -> ActionAck:
        ack = self.case.ack()
        ack.created = not self.opened_by_request
        self.opened_by_request = True
        return ack

    @workflow.update
    def assign(self, action: Assign) -> ActionAck:
        owner = action.owner or action.actor.user_id
        self.case.assign(owner, action.actor)
        if self.case.stage == Stage.UNASSIGNED:
            self.case.move_to(
                Stage.AWAITING_SCHEDULING, action.actor, "Owner in place; schedule the appointment"
            )
        return self.case.ack()

    @assign.validator
    def _check_assign(self, action: Assign) -> None:
        reassigning = action.owner not in (None, action.actor.user_id)
        self.case.authorize(action.actor, supervisor=reassigning)
        self.case.require("assign")
        if (action.owner or action.actor.user_id) == self.case.owner:
            raise errors.not_allowed(f"Case is already owned by {self.case.owner}")

    @workflow.update
    async def mark_scheduled(self, action: MarkScheduled) -> ActionAck:
        await self.ehr.claim(self.claims.schedule(action))
        return self.case.ack()

    @mark_scheduled.validator
    def _check_scheduled(self, action: MarkScheduled) -> None:
        self._check(action.actor, "mark the case scheduled", Stage.AWAITING_SCHEDULING)
        self._check_authorized()
        self._check_ehr_idle()
        if action.appointment_at.tzinfo is None:
            raise errors.invalid("appointment_at needs a time zone offset")
        if action.appointment_at < workflow.now():
            raise errors.invalid("The appointment time is in the past")

    @workflow.update
    def record_outreach(self, action: RecordOutreach) -> ActionAck:
        case = self.case
        case.count("outreach_attempts")
        case.record(
            EventKind.OUTREACH,
            action.actor,
            f"Outreach by {action.channel.value}: {action.outcome.value}",
            details={"channel": action.channel, "outcome": action.outcome, "note": action.note},
        )
        if action.outcome == OutreachOutcome.DECLINED:
            case.move_to(Stage.PATIENT_DECLINED, action.actor, "Patient declined the referral")
        elif action.outcome in UNSUCCESSFUL:
            unreached = case.count("unreached_attempts")
            if (
                case.stage == Stage.AWAITING_SCHEDULING
                and unreached >= self.policy.max_unreached_attempts
            ):
                case.move_to(
                    Stage.UNABLE_TO_REACH,
                    action.actor,
                    f"{unreached} outreach attempts without reaching the patient",
                )
        else:
            case.counters["unreached_attempts"] = 0
        if action.channel == Channel.PHONE:
            self.outreach.phoned()
        return case.ack()

    @record_outreach.validator
    def _check_outreach(self, action: RecordOutreach) -> None:
        self._check(action.actor, "record outreach", Stage.AWAITING_SCHEDULING, Stage.SCHEDULED)

    @workflow.update
    def pause_outreach(self, action: PauseOutreach) -> ActionAck:
        self.outreach.pause(action.actor, action.reason)
        return self.case.ack()

    @pause_outreach.validator
    def _check_pause(self, action: PauseOutreach) -> None:
        self._check(action.actor, "pause outreach", *OUTREACH_STAGES)
        self.outreach.check_pause()

    @workflow.update
    def resume_outreach(self, action: ResumeOutreach) -> ActionAck:
        self.outreach.unpause(action.actor)
        return self.case.ack()

    @resume_outreach.validator
    def _check_resume(self, action: ResumeOutreach) -> None:
        self._check(action.actor, "resume outreach", *OUTREACH_STAGES)
        self.outreach.check_resume()

    @workflow.update
    async def mark_completed(self, action: MarkCompleted) -> ActionAck:
        await self.ehr.claim(self.claims.complete(action))
        return self.case.ack()

    @mark_completed.validator
    def _check_completed(self, action: MarkCompleted) -> None:
        self._check(action.actor, "mark the case completed", Stage.SCHEDULED, Stage.AWAITING_RESULT)
        self._check_ehr_idle()

    @workflow.update
    async def record_documents(self, action: RecordDocuments) -> ActionAck:
        await self.ehr.claim(self.claims.documents(action))
        return self.case.ack()

    @record_documents.validator
    def _check_documents(self, action: RecordDocuments) -> None:
        self._check(action.actor, "record documents received")
        self._check_ehr_idle()

    @workflow.update
    def mark_no_show(self, action: MarkNoShow) -> ActionAck:
        case = self.case
        loops = case.count("reschedules")
        missed = case.references.pop("appointment", "")
        case.moments.pop("appointment_at", None)
        case.moments["no_show_at"] = workflow.now()
        case.move_to(
            Stage.AWAITING_SCHEDULING,
            action.actor,
            f"No-show for {missed}; back to scheduling (loop {loops})",
            kind=EventKind.NO_SHOW,
            details={"appointment": missed, "note": action.note},
        )
        return case.ack()

    @mark_no_show.validator
    def _check_no_show(self, action: MarkNoShow) -> None:
        self._check(action.actor, "record a no-show", Stage.SCHEDULED, Stage.AWAITING_RESULT)

    @workflow.update
    def cancel(self, action: Cancel) -> ActionAck:
        self.case.move_to(
            Stage.CANCELLED,
            action.actor,
            f"Cancelled: {action.reason}",
            kind=EventKind.CANCELLED,
            details={"reason": action.reason},
        )
        return self.case.ack()

    @cancel.validator
    def _check_cancel(self, action: Cancel) -> None:
        self._check(action.actor, "cancel")

    @workflow.update
    def add_note(self, action: AddNote) -> ActionAck:
        self.case.record(EventKind.NOTE, action.actor, "Note added", details={"text": action.text})
        return self.case.ack()

    @add_note.validator
    def _check_note(self, action: AddNote) -> None:
        self._check(action.actor, "add a note")

    def _check(self, actor: Actor, action: str, *stages: Stage) -> None:
        self.case.authorize(actor)
        self.case.require(action, *stages)

    def _check_authorized(self) -> None:
        """A visit that needs prior authorization is scheduled once it is approved."""
        authorization = self.case.references.get("authorization")
        if authorization is None:
            return
        stage = self.case.references.get("authorization_stage")
        if stage not in AUTHORIZED:
            said = f"is {stage}" if stage else "has no decision yet"
            raise errors.not_allowed(
                f"Prior authorization {authorization} {said}: schedule once it is approved"
            )

    def _check_ehr_idle(self) -> None:
        if self.ehr.busy:
            raise errors.not_allowed("The last action is still being verified in the EHR")

    @workflow.signal
    def authorization_decided(self, news: AuthorizationNews) -> None:
        """The order's prior authorization changed: approved, denied, lapsed, cancelled."""
        case = self.case
        if news.authorization != case.references.get("authorization", news.authorization):
            workflow.logger.warning("News of another authorization ignored")
            return
        if case.closed or case.references.get("authorization_stage") == news.stage:
            return
        case.references["authorization"] = news.authorization
        case.references["authorization_stage"] = news.stage
        number = f" ({news.auth_number})" if news.auth_number else ""
        case.record(
            EventKind.NOTE,
            SYSTEM,
            f"Prior authorization {news.authorization} is {news.stage}{number}",
            details={
                "authorization": news.authorization,
                "authorization_stage": news.stage,
                "auth_number": news.auth_number or "",
            },
        )

    # -- the EHR ----------------------------------------------------------------------------------

    @workflow.signal
    def ehr_changed(self, event: EhrEvent) -> None:
        """Something about this case changed in the EHR (detection or a notification)."""
        self.ehr.notice(event)

    # -- the patient ------------------------------------------------------------------------------

    @workflow.signal(name=REPLY_SIGNAL)
    def patient_replied(self, news: ReplyNews) -> None:
        """The patient answered one of the case's messages (the messaging webhooks)."""
        self.outreach.replied(news)

    @workflow.signal(name=DELIVERY_SIGNAL)
    def message_status(self, news: DeliveryNews) -> None:
        """The provider's final word on one of the case's messages (the messaging webhooks)."""
        self.outreach.delivered(news)
