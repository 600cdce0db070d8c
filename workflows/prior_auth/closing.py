"""How a prior authorization ends, or goes on by itself from the EHR: the service delivered under
it (claimed by the care team and verified, or a report filed in the EHR), the case cancelled (a
request the payer holds is cancelled there first), and what other EHR news means for it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import EhrEvent, Verdict
    from workflows.care.case import Case
    from workflows.care.ehr import ORDER_WITHDRAWN, REPORTS, EhrLink
    from workflows.care.models import SYSTEM, Actor, EventKind, Evidence
    from workflows.prior_auth.checklist import Checklist
    from workflows.prior_auth.models import REQUEST_OUT, UNDECIDED, MarkDelivered, Stage
    from workflows.prior_auth.news import News
    from workflows.prior_auth.payer import Requests


class Closing:
    def __init__(
        self, case: Case, ehr: EhrLink, checklist: Checklist, requests: Requests, news: News
    ) -> None:
        self.case = case
        self.ehr = ehr
        self.checklist = checklist
        self.requests = requests
        self.news = news

    async def deliver(self, action: MarkDelivered) -> None:
        verdict = await self.ehr.confirm(
            action.actor,
            action.report,
            self.ehr.report_filed(action.report),
            unverified=Verdict(verified=True, evidence=[Evidence(reference=action.report)]),
            still_fits=lambda: self.case.stage == Stage.APPROVED,
        )
        if verdict:
            self.delivered(action.actor, action.report, verdict)

    def delivered(self, actor: Actor, report: str, verdict: Verdict) -> None:
        number = self.case.references.get("auth_number", "")
        self.case.references["report"] = report
        self.case.move_to(
            Stage.DELIVERED,
            actor,
            f"Service delivered under authorization {number or '(no number)'}: {report}",
            kind=EventKind.COMPLETED,
            details={"report": report, "auth_number": number},
            evidence=verdict.evidence,
        )
        self.news.tell()

    async def cancel(self, actor: Actor, summary: str, reason: str) -> None:
        """Close the case; a request the payer holds is cancelled there first."""
        if self.case.closed:
            return
        details = {"reason": reason}
        if self.case.stage in REQUEST_OUT:
            details.update(await self.requests.cancel())
        if not self.case.closed:
            self.case.move_to(
                Stage.CANCELLED, actor, summary, kind=EventKind.CANCELLED, details=details
            )
            self.news.tell()

    async def ehr_event(self, event: EhrEvent) -> None:
        """What a change in the EHR means for the authorization (runs with the EHR to itself)."""
        case = self.case
        if case.closed:
            return
        if event.resource_type == "ServiceRequest" and event.status in ORDER_WITHDRAWN:
            await self.cancel(SYSTEM, f"Order {event.status} in the EHR", f"order {event.status}")
        elif case.stage == Stage.APPROVED and (
            event.resource_type in REPORTS or event.status == "completed"
        ):
            verdict = await self.ehr.verify(
                self.ehr.report_filed(None), unverified=Verdict(verified=False)
            )
            if verdict.verified and case.stage == Stage.APPROVED:
                self.delivered(SYSTEM, verdict.evidence[-1].reference, verdict)
        elif case.stage in UNDECIDED:
            self.checklist.check(self.checklist.outstanding)
