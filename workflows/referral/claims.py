"""The referral's claims that the EHR can confirm, and what a change in the EHR means for them.

A care-team claim (scheduled, completed, documents received) is checked in the EHR when the case
is linked to one: with evidence it moves the case, without it the case goes back to its owner as
rework. A change the EHR reports (an appointment booked there, a report filed, the order revoked)
moves the case by itself.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import EhrEvent, Verdict
    from workflows.care.case import Case
    from workflows.care.ehr import ORDER_WITHDRAWN, REPORTS, EhrLink
    from workflows.care.models import SYSTEM, Actor, EventKind, Evidence
    from workflows.referral.models import MarkCompleted, MarkScheduled, RecordDocuments, Stage

# The authorization's stages in which the visit may be scheduled.
AUTHORIZED = {"approved", "delivered"}
BEFORE_VISIT = (Stage.UNASSIGNED, Stage.AWAITING_SCHEDULING)
AFTER_BOOKING = (Stage.SCHEDULED, Stage.AWAITING_RESULT)


class Claims:
    def __init__(self, case: Case, ehr: EhrLink) -> None:
        self.case = case
        self.ehr = ehr

    async def schedule(self, action: MarkScheduled) -> None:
        verdict = await self.ehr.confirm(
            action.actor,
            action.appointment,
            self.ehr.appointment_booked(action.appointment),
            unverified=Verdict(verified=True, appointment_at=action.appointment_at),
            still_fits=lambda: self.case.stage == Stage.AWAITING_SCHEDULING,
        )
        if verdict:
            self.scheduled(action.actor, action.appointment, verdict)

    def scheduled(self, actor: Actor, appointment: str, verdict: Verdict) -> None:
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

    async def complete(self, action: MarkCompleted) -> None:
        verdict = await self.ehr.confirm(
            action.actor,
            action.report,
            self.ehr.report_filed(action.report),
            unverified=Verdict(verified=True, evidence=[Evidence(reference=action.report)]),
            still_fits=lambda: self.case.stage in AFTER_BOOKING,
        )
        if verdict:
            self.completed(action.actor, action.report, verdict)

    def completed(self, actor: Actor, report: str, verdict: Verdict) -> None:
        self.case.references["report"] = report
        self.case.move_to(
            Stage.COMPLETED,
            actor,
            f"Loop closed: {report} on file",
            kind=EventKind.COMPLETED,
            details={"report": report},
            evidence=verdict.evidence,
        )

    async def documents(self, action: RecordDocuments) -> None:
        listed = ", ".join(action.documents)
        claimed = [Evidence(reference=document) for document in action.documents]
        verdict = await self.ehr.confirm(
            action.actor,
            listed,
            self.ehr.documents_on_file(action.documents),
            unverified=Verdict(verified=True, evidence=claimed),
            still_fits=lambda: not self.case.closed,
        )
        if verdict:
            self.case.references["documents"] = listed
            self.case.record(
                EventKind.DOCUMENTS_RECEIVED,
                action.actor,
                f"Documents on file: {listed}",
                details={"documents": listed},
                evidence=verdict.evidence,
            )

    def _booked_before_authorization(self) -> None:
        """The EHR shows the visit booked while its prior authorization is not approved: the
        booking stands (it happened), and the case says so, for the owner to settle with the
        payer before the visit."""
        authorization = self.case.references.get("authorization")
        stage = self.case.references.get("authorization_stage")
        if authorization is None or stage in AUTHORIZED:
            return
        said = f"is {stage}" if stage else "has no decision yet"
        self.case.record(
            EventKind.EXCEPTION_RAISED,
            SYSTEM,
            f"Booked in the EHR while prior authorization {authorization} {said}",
            details={"authorization": authorization, "authorization_stage": stage or ""},
        )

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
        elif event.resource_type == "Appointment" and case.stage in BEFORE_VISIT:
            # Booked directly in the EHR: the case moves on by itself, with the evidence.
            verdict = await self.ehr.verify(
                self.ehr.appointment_booked(None), unverified=Verdict(verified=False)
            )
            if verdict.verified and case.stage in BEFORE_VISIT:
                self.scheduled(SYSTEM, verdict.evidence[0].reference, verdict)
                self._booked_before_authorization()
        elif (
            event.resource_type in REPORTS or event.status == "completed"
        ) and case.stage in AFTER_BOOKING:
            verdict = await self.ehr.verify(
                self.ehr.report_filed(None), unverified=Verdict(verified=False)
            )
            if verdict.verified and case.stage in AFTER_BOOKING:
                self.completed(SYSTEM, verdict.evidence[-1].reference, verdict)
