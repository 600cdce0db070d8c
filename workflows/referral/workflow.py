"""Referral loop closure: from an order to an appointment kept and its report back to the referrer.

unassigned -> awaiting_scheduling -> scheduled -> awaiting_result -> completed, with cancelled,
patient_declined and unable_to_reach as the other ways out. A no-show goes back to scheduling.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import EhrEvent, Verdict
    from workflows.care import errors
    from workflows.care.case import Case
    from workflows.care.ehr import EhrLink
    from workflows.care.ladder import Step, escalate, remind
    from workflows.care.models import (
        SYSTEM,
        Actor,
        CaseDetail,
        CaseOutcome,
        EventKind,
        Evidence,
        Role,
    )
    from workflows.referral.models import (
        CLOSED,
        TASK_STATES,
        AddNote,
        Assign,
        Cancel,
        MarkCompleted,
        MarkNoShow,
        MarkScheduled,
        OpenCase,
        OutreachOutcome,
        RecordDocuments,
        RecordOutreach,
        ReferralInput,
        Stage,
    )

PATHWAY_VERSION = "2026.11"  # named in audit exports; bump when the protocol changes
UNSUCCESSFUL = {
    OutreachOutcome.NO_ANSWER,
    OutreachOutcome.LEFT_MESSAGE,
    OutreachOutcome.WRONG_NUMBER,
}
ORDER_WITHDRAWN = {"revoked", "entered-in-error"}  # ServiceRequest statuses that end the case
REPORTS = {"DiagnosticReport", "DocumentReference"}


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
        )
        self.opened_by_request = False
        self.ehr = EhrLink(self.case, enabled=order.ehr)

    @workflow.run
    async def run(self, order: ReferralInput) -> CaseOutcome:
        case = self.case
        case.keep_trail()
        self.ehr.start(on_event=self.ehr_event)
        while not case.closed:
            if case.stage == Stage.SCHEDULED:
                if await case.wait_until(case.moments["appointment_at"], Stage.SCHEDULED):
                    case.move_to(
                        Stage.AWAITING_RESULT,
                        SYSTEM,
                        "Appointment time passed; awaiting the result or report",
                    )
            else:
                await case.milestone(self.ladder(case.stage))
        await self.ehr.settled()
        await case.settle()
        return case.outcome()

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
        return self.case.detail()

    # -- care-team actions --------------------------------------------------------------------

    @workflow.update
    def open_case(self, request: OpenCase) -> CaseDetail:
        detail = self.case.detail()
        detail.created = not self.opened_by_request
        self.opened_by_request = True
        return detail

    @workflow.update
    def assign(self, action: Assign) -> CaseDetail:
        owner = action.owner or action.actor.user_id
        self.case.assign(owner, action.actor)
        if self.case.stage == Stage.UNASSIGNED:
            self.case.move_to(
                Stage.AWAITING_SCHEDULING, action.actor, "Owner in place; schedule the appointment"
            )
        return self.case.detail()

    @assign.validator
    def _check_assign(self, action: Assign) -> None:
        reassigning = action.owner not in (None, action.actor.user_id)
        self.case.authorize(action.actor, supervisor=reassigning)
        self.case.require("assign")
        if (action.owner or action.actor.user_id) == self.case.owner:
            raise errors.not_allowed(f"Case is already owned by {self.case.owner}")

    @workflow.update
    async def mark_scheduled(self, action: MarkScheduled) -> CaseDetail:
        await self.ehr.claim(self._schedule(action))
        return self.case.detail()

    async def _schedule(self, action: MarkScheduled) -> None:
        verdict = await self.ehr.verify(
            self.ehr.appointment_booked(action.appointment),
            unverified=Verdict(verified=True, appointment_at=action.appointment_at),
        )
        if self.case.stage != Stage.AWAITING_SCHEDULING:
            return  # the case moved on while the EHR was answering
        if not verdict.verified:
            await self.ehr.rework(action.actor, action.appointment, verdict)
            return
        self._scheduled(action.actor, action.appointment, verdict)

    def _scheduled(self, actor: Actor, appointment: str, verdict: Verdict) -> None:
        # The EHR's start time is the truth when there is one.
        at = verdict.appointment_at
        assert at is not None
        self.case.references["appointment"] = appointment
        self.case.moments["appointment_at"] = at
        self.case.move_to(
            Stage.SCHEDULED,
            actor,
            f"Scheduled: {appointment} at {at.isoformat()}",
            details={"appointment": appointment, "appointment_at": at.isoformat()},
            evidence=verdict.evidence,
        )

    @mark_scheduled.validator
    def _check_scheduled(self, action: MarkScheduled) -> None:
        self._check(action.actor, "mark the case scheduled", Stage.AWAITING_SCHEDULING)
        self._check_ehr_idle()
        if action.appointment_at.tzinfo is None:
            raise errors.invalid("appointment_at needs a time zone offset")
        if action.appointment_at < workflow.now():
            raise errors.invalid("The appointment time is in the past")

    @workflow.update
    def record_outreach(self, action: RecordOutreach) -> CaseDetail:
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
        return case.detail()

    @record_outreach.validator
    def _check_outreach(self, action: RecordOutreach) -> None:
        self._check(action.actor, "record outreach", Stage.AWAITING_SCHEDULING, Stage.SCHEDULED)

    @workflow.update
    async def mark_completed(self, action: MarkCompleted) -> CaseDetail:
        await self.ehr.claim(self._complete(action))
        return self.case.detail()

    async def _complete(self, action: MarkCompleted) -> None:
        verdict = await self.ehr.verify(
            self.ehr.report_filed(action.report),
            unverified=Verdict(verified=True, evidence=[Evidence(reference=action.report)]),
        )
        if self.case.stage not in (Stage.SCHEDULED, Stage.AWAITING_RESULT):
            return  # the case moved on while the EHR was answering
        if not verdict.verified:
            await self.ehr.rework(action.actor, action.report, verdict)
            return
        self._completed(action.actor, action.report, verdict)

    def _completed(self, actor: Actor, report: str, verdict: Verdict) -> None:
        self.case.references["report"] = report
        self.case.move_to(
            Stage.COMPLETED,
            actor,
            f"Loop closed: {report} on file",
            kind=EventKind.COMPLETED,
            details={"report": report},
            evidence=verdict.evidence,
        )

    @mark_completed.validator
    def _check_completed(self, action: MarkCompleted) -> None:
        self._check(action.actor, "mark the case completed", Stage.SCHEDULED, Stage.AWAITING_RESULT)
        self._check_ehr_idle()

    @workflow.update
    async def record_documents(self, action: RecordDocuments) -> CaseDetail:
        await self.ehr.claim(self._documents(action))
        return self.case.detail()

    async def _documents(self, action: RecordDocuments) -> None:
        listed = ", ".join(action.documents)
        claimed = [Evidence(reference=document) for document in action.documents]
        verdict = await self.ehr.verify(
            self.ehr.documents_on_file(action.documents),
            unverified=Verdict(verified=True, evidence=claimed),
        )
        if self.case.closed:
            return  # the case ended while the EHR was answering
        if not verdict.verified:
            await self.ehr.rework(action.actor, listed, verdict)
            return
        self.case.references["documents"] = listed
        self.case.record(
            EventKind.DOCUMENTS_RECEIVED,
            action.actor,
            f"Documents on file: {listed}",
            details={"documents": listed},
            evidence=verdict.evidence,
        )

    @record_documents.validator
    def _check_documents(self, action: RecordDocuments) -> None:
        self._check(action.actor, "record documents received")
        self._check_ehr_idle()

    @workflow.update
    def mark_no_show(self, action: MarkNoShow) -> CaseDetail:
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
        return case.detail()

    @mark_no_show.validator
    def _check_no_show(self, action: MarkNoShow) -> None:
        self._check(action.actor, "record a no-show", Stage.SCHEDULED, Stage.AWAITING_RESULT)

    @workflow.update
    def cancel(self, action: Cancel) -> CaseDetail:
        self.case.move_to(
            Stage.CANCELLED,
            action.actor,
            f"Cancelled: {action.reason}",
            kind=EventKind.CANCELLED,
            details={"reason": action.reason},
        )
        return self.case.detail()

    @cancel.validator
    def _check_cancel(self, action: Cancel) -> None:
        self._check(action.actor, "cancel")

    @workflow.update
    def add_note(self, action: AddNote) -> CaseDetail:
        self.case.record(EventKind.NOTE, action.actor, "Note added", details={"text": action.text})
        return self.case.detail()

    @add_note.validator
    def _check_note(self, action: AddNote) -> None:
        self._check(action.actor, "add a note")

    def _check(self, actor: Actor, action: str, *stages: Stage) -> None:
        self.case.authorize(actor)
        self.case.require(action, *stages)

    def _check_ehr_idle(self) -> None:
        if self.ehr.busy:
            raise errors.not_allowed("The last action is still being verified in the EHR")

    # -- the EHR ----------------------------------------------------------------------------------

    @workflow.signal
    def ehr_changed(self, event: EhrEvent) -> None:
        """Something about this case changed in the EHR (detection or a notification)."""
        self.ehr.notice(event)

    async def ehr_event(self, event: EhrEvent) -> None:
        """What a change in the EHR means for the referral."""
        case = self.case
        if case.closed:
            return
        if event.resource_type == "ServiceRequest" and event.status in ORDER_WITHDRAWN:
            case.move_to(
                Stage.CANCELLED,
                SYSTEM,
                f"Order {event.status} in the EHR",
                kind=EventKind.CANCELLED,
                details={"order_status": event.status or ""},
            )
        elif event.resource_type == "Appointment" and case.stage in (
            Stage.UNASSIGNED,
            Stage.AWAITING_SCHEDULING,
        ):
            # Booked directly in the EHR: the case moves on by itself, with the evidence.
            verdict = await self.ehr.verify(
                self.ehr.appointment_booked(None), unverified=Verdict(verified=False)
            )
            if verdict.verified and case.stage in (Stage.UNASSIGNED, Stage.AWAITING_SCHEDULING):
                self._scheduled(SYSTEM, verdict.evidence[0].reference, verdict)
        elif (event.resource_type in REPORTS or event.status == "completed") and case.stage in (
            Stage.SCHEDULED,
            Stage.AWAITING_RESULT,
        ):
            verdict = await self.ehr.verify(
                self.ehr.report_filed(None),
                unverified=Verdict(verified=False),
            )
            if verdict.verified and case.stage in (Stage.SCHEDULED, Stage.AWAITING_RESULT):
                self._completed(SYSTEM, verdict.evidence[-1].reference, verdict)
