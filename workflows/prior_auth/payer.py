"""The case's requests to the payer (Da Vinci PAS) and what each decision means for it.

A request goes out when every prerequisite is met or waived; its answer may decide it at once or
pend it, and a pended request is decided by the payer's notification (`payer_decided`), never by
polling: only when the payer's deadline passes is it asked, once. A denied request is never
updated: an appeal sends a new one. The same decision delivered twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payer.models import (
        APPROVING,
        PasDecision,
        PasInquiry,
        PasItem,
        PasRequest,
        ReviewAction,
    )
    from activities.payer.pas import PayerActivities
    from workflows.care import queues
    from workflows.care.calls import CALL_TIMEOUT, RETRY, patiently
    from workflows.care.case import Case
    from workflows.care.models import SYSTEM, Actor, EventKind, Role, StaffNotice
    from workflows.prior_auth.checklist import Checklist
    from workflows.prior_auth.models import PriorAuthInput, Stage
    from workflows.prior_auth.news import News

CANCEL_WITHIN = timedelta(hours=1)  # a cancel waits this long for the payer, then closes anyway
SEEN_KEPT = 20  # the newest decisions (response ids) the case remembers having applied
SEEN = "responses"  # references key: applied response ids, comma-separated


class Requests:
    def __init__(self, case: Case, order: PriorAuthInput, checklist: Checklist, news: News):
        self.case = case
        self.input = order
        self.checklist = checklist
        self.news = news

    @property
    def submission(self) -> int:
        """The number of the newest request (0: none sent yet)."""
        return self.case.counters.get("submissions", 0)

    @property
    def coverage(self) -> str | None:
        return self.input.coverage or self.case.references.get("coverage")

    def missing(self) -> str | None:
        """What the request cannot go without, beyond the checklist."""
        if not self.coverage:
            return "no Coverage is known for the order"
        if not self.input.provider:
            return "the order names no requesting provider"
        return None

    # -- sending ------------------------------------------------------------------------------

    async def submit(self, actor: Actor, note: str = "") -> None:
        """Send a new request; the case is submitted meanwhile, then as the payer decided."""
        case, back = self.case, self.case.stage
        if missing := self.missing():
            case.record(EventKind.EXCEPTION_RAISED, actor, f"Cannot send the request: {missing}")
            return
        number = case.count("submissions")
        documents = self.checklist.documents()
        request = PasRequest(
            case_id=case.case_id,
            submission=number,
            patient=case.order.patient,
            coverage=self.coverage,
            provider=self.input.provider,
            order=case.order.resource,
            items=self._items(),
            supporting=documents,
            expedited=self.input.expedited,
        )
        case.moments["submitted_at"] = workflow.now()
        case.references.pop("inquired", None)
        case.move_to(
            Stage.SUBMITTED,
            actor,
            f"Request {number} sent to the payer with {len(documents)} document(s)",
            kind=EventKind.SUBMITTED,
            details={"submission": str(number), "documents": ", ".join(documents), "note": note},
        )
        handle = workflow.start_activity_method(
            PayerActivities.submit,
            request,
            task_queue=queues.ehr(),
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=RETRY,
        )
        await patiently(case, [handle], "the payer")
        try:
            decision = await handle
        except ActivityError as err:
            reason = _reason(err)
            case.move_to(
                back,
                SYSTEM,
                f"The payer refused request {number}: {reason}; correct it and submit again",
                kind=EventKind.EXCEPTION_RAISED,
                details={"submission": str(number), "reason": reason},
            )
            return
        self.decided(decision, "answer")

    def _items(self) -> list[PasItem]:
        # The service is asked for from today: the validity the payer grants counts from it.
        today = self.case.calendar.local_date(workflow.now())
        return [
            PasItem(
                sequence=n,
                service_code=item.code,
                service_system=item.system,
                service_display=item.display,
                serviced_date=today,
            )
            for n, item in enumerate(self.input.items, start=1)
        ]

    async def cancel(self) -> dict[str, str]:
        """Cancel the newest request at the payer; what happened, for the case's closing event."""
        number = self.submission
        request = PasRequest(
            case_id=self.case.case_id,
            submission=number,
            patient=self.case.order.patient,
            coverage=self.coverage or "",
            provider=self.input.provider or "",
            order=self.case.order.resource,
            items=self._items(),
            cancel=True,
        )
        try:
            decision = await workflow.execute_activity_method(
                PayerActivities.submit,
                request,
                task_queue=queues.ehr(),
                start_to_close_timeout=CALL_TIMEOUT,
                schedule_to_close_timeout=CANCEL_WITHIN,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            return {"payer_cancel": f"failed: {_reason(err)}", "submission": str(number)}
        self._seen(decision.response)
        actions = ", ".join(sorted({item.action.value for item in decision.items}))
        return {"payer_cancel": actions or "none", "submission": str(number)}

    async def inquire(self) -> None:
        """The payer's deadline passed with no decision: ask it once where the request stands."""
        case, number = self.case, self.submission
        if case.references.get("inquired") == str(number):
            return
        case.references["inquired"] = str(number)
        case.count("inquiries")
        case.record(
            EventKind.EXCEPTION_RAISED,
            SYSTEM,
            f"No decision on request {number} by the payer's deadline; asking the payer",
            details={"submission": str(number)},
        )
        inquiry = PasInquiry(
            case_id=case.case_id,
            submission=number,
            patient=case.order.patient,
            coverage=self.coverage or "",
            provider=self.input.provider or "",
        )
        try:
            decision = await workflow.execute_activity_method(
                PayerActivities.inquire,
                inquiry,
                task_queue=queues.ehr(),
                start_to_close_timeout=CALL_TIMEOUT,
                schedule_to_close_timeout=CANCEL_WITHIN,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"The payer's inquiry failed: {_reason(err)}",
                details={"submission": str(number)},
            )
            return
        self.decided(decision, "inquiry")

    # -- decisions ------------------------------------------------------------------------------

    def decided(self, decision: PasDecision, how: str) -> None:
        """Apply the payer's decision on the newest request; an old, repeated or late one is
        left as it is."""
        case = self.case
        if decision.case_id != case.case_id:
            workflow.logger.warning("Payer decision for another case ignored")
            return
        seen = case.references.get(SEEN, "").split(", ")
        if decision.submission != self.submission or decision.response in seen:
            return
        if case.stage not in (Stage.SUBMITTED, Stage.PENDED):
            return
        self._seen(decision.response)
        actions = {item.action for item in decision.items}
        number = str(decision.submission)
        details = {"submission": number, "response": decision.response, "via": how}
        approved = [item for item in decision.items if item.action in APPROVING]
        if approved or actions == {ReviewAction.NO_ACTION}:
            self._approved(decision, details)
        elif ReviewAction.PENDED in actions or ReviewAction.CONTACT_PAYER in actions:
            self._pended(decision, details, contact=ReviewAction.CONTACT_PAYER in actions)
        elif ReviewAction.NOT_CERTIFIED in actions:
            reason = "; ".join(i.reason for i in decision.items if i.reason) or "unspecified"
            case.references["denial_reason"] = reason
            case.moments["decided_at"] = workflow.now()
            case.move_to(
                Stage.DENIED,
                SYSTEM,
                f"Request {number} denied: {reason}; appeal or close",
                kind=EventKind.DECIDED,
                details={**details, "decision": "denied", "reason": reason},
            )
            self._tell_owner(f"Case {case.case_id}: request {number} was denied; appeal or close")
            self.news.tell()
        elif actions == {ReviewAction.CANCELLED}:
            case.move_to(
                Stage.CANCELLED,
                SYSTEM,
                f"Request {number} cancelled by the payer",
                kind=EventKind.DECIDED,
                details={**details, "decision": "cancelled"},
            )
            self.news.tell()
        else:
            case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"The payer's answer to request {number} decides nothing; call the payer",
                details={**details, "actions": ", ".join(sorted(a.value for a in actions))},
            )

    def _approved(self, decision: PasDecision, details: dict[str, str]) -> None:
        case, zone = self.case, ZoneInfo(self.case.calendar.timezone)
        approved = [item for item in decision.items if item.action in APPROVING]
        number = next((i.auth_number for i in approved if i.auth_number), None)
        starts = [i.valid_from for i in approved if i.valid_from]
        ends = [i.valid_to for i in approved if i.valid_to]
        for key in ("auth_number", "denial_reason", "pended_reference"):
            case.references.pop(key, None)
        for key in ("authorized_from", "authorized_until"):
            case.moments.pop(key, None)
        if number:
            case.references["auth_number"] = number
        if starts:
            case.moments["authorized_from"] = datetime.combine(min(starts), time(0), zone)
        if ends:  # the first instant the authorization no longer covers
            last = max(ends) + timedelta(days=1)
            case.moments["authorized_until"] = datetime.combine(last, time(0), zone)
        partial = {i.action for i in approved} - {ReviewAction.CERTIFIED}
        valid = f", valid {min(starts)} to {max(ends)}" if starts and ends else ""
        case.move_to(
            Stage.APPROVED,
            SYSTEM,
            f"Request {details['submission']} approved{' in part' if partial else ''}: "
            f"{number or 'no authorization number'}{valid}",
            kind=EventKind.DECIDED,
            details={
                **details,
                "decision": "approved",
                "auth_number": number or "",
                "valid_from": min(starts).isoformat() if starts else "",
                "valid_to": max(ends).isoformat() if ends else "",
                "actions": ", ".join(sorted(i.action.value for i in decision.items)),
            },
        )
        self.news.tell()

    def _pended(self, decision: PasDecision, details: dict[str, str], *, contact: bool) -> None:
        case = self.case
        reference = next((i.pended_reference for i in decision.items if i.pended_reference), None)
        if reference:
            case.references["pended_reference"] = reference
        said = "the payer asks to be contacted" if contact else "the payer is reviewing it"
        summary = f"Request {details['submission']} pended: {said}"
        decided = {
            **details,
            "decision": "contact_payer" if contact else "pended",
            "pended_reference": reference or "",
        }
        if case.stage == Stage.PENDED:
            case.record(EventKind.DECIDED, SYSTEM, summary, details=decided)
        else:
            case.move_to(Stage.PENDED, SYSTEM, summary, kind=EventKind.DECIDED, details=decided)
        if contact:
            self._tell_owner(f"Case {case.case_id}: the payer asks to be contacted; call it")

    def _seen(self, response: str) -> None:
        seen = [r for r in self.case.references.get(SEEN, "").split(", ") if r]
        self.case.references[SEEN] = ", ".join([*seen, response][-SEEN_KEPT:])

    def _tell_owner(self, message: str) -> None:
        case = self.case
        case.notify(
            StaffNotice(
                case_id=case.case_id,
                kind=EventKind.DECIDED,
                team=case.team,
                role=Role.COORDINATOR,
                user_id=case.owner,
                message=message,
                due_at=case.due_at,
            )
        )


def _reason(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message[:300]
    return "the payer could not be reached"
