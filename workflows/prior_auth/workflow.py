"""Prior authorization: from an order that needs it to an approval used in time.

collecting -> submitted -> approved -> delivered, or -> pended -> approved | denied; denied ->
appealing -> submitted (a new request) or closed_denied; an approval that lapses unused goes back
to collecting; cancelled from anywhere open.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import EhrEvent, Verdict
    from activities.payer.models import PasDecision
    from workflows.care import errors
    from workflows.care.calls import WAITING_SINCE
    from workflows.care.case import Case
    from workflows.care.ehr import EhrLink
    from workflows.care.ladder import Step, escalate, remind
    from workflows.care.models import (
        SYSTEM,
        ActionAck,
        Actor,
        CaseDetail,
        CaseOutcome,
        CaseSnapshot,
        EventKind,
        Evidence,
        Role,
    )
    from workflows.prior_auth.checklist import Checklist
    from workflows.prior_auth.closing import Closing
    from workflows.prior_auth.models import (
        ATTACHING,
        CLOSED,
        DECIDING_APPEAL,
        PREPARING,
        TASK_STATES,
        AddNote,
        Assign,
        AttachDocument,
        Cancel,
        CloseDenied,
        MarkDelivered,
        OpenCase,
        PriorAuthInput,
        RecordPayerCall,
        Stage,
        StartAppeal,
        SubmitNow,
        WaivePrerequisite,
    )
    from workflows.prior_auth.news import News
    from workflows.prior_auth.payer import Requests

PATHWAY_VERSION = "2026.11"
WAITING_ON_PAYER = WAITING_SINCE.format("payer")


@workflow.defn(name="PriorAuthorization")
class PriorAuthWorkflow:
    @workflow.init
    def __init__(self, order: PriorAuthInput) -> None:
        self.input = order
        self.policy = order.policy
        self.case = Case(
            case_id=order.case_id,
            case_type="prior_auth",
            stage=Stage.COLLECTING,
            team=order.team,
            priority=order.priority,
            location=order.location,
            order=order.order,
            calendar=order.calendar,
            task_states=TASK_STATES,
            closed_stages=CLOSED,
            deadline=self.deadline,
            pathway="prior_auth",
            pathway_version=PATHWAY_VERSION,
            snapshot=order.snapshot,
            history_events=order.policy.history_events,
        )
        self.opened_by_request = bool(order.snapshot and order.snapshot.opened_by_request)
        self.ehr = EhrLink(self.case, enabled=order.ehr)
        if order.snapshot:
            self.ehr.resume(order.snapshot)
        self.checklist = Checklist(self.case, order, self.ehr.lock)
        self.checklist.on_change = self._ready
        self.news = News(self.case, order.referral)
        self.requests = Requests(self.case, order, self.checklist, self.news)
        self.closing = Closing(self.case, self.ehr, self.checklist, self.requests, self.news)
        self.wanted: Actor | None = None  # a submission asked for, by whom
        self.wanted_note = ""
        self.submitting = False

    @workflow.run
    async def run(self, order: PriorAuthInput) -> CaseOutcome:
        case = self.case
        case.keep_trail()
        self.ehr.start(on_event=self.closing.ehr_event)
        self.checklist.start()
        self.news.start()
        asyncio.create_task(self._submitter())
        if order.snapshot is None:
            self.checklist.open(case.due_at)
            if not order.prerequisites:
                self._ready()
        while not case.closed and not case.continuing:
            if case.stage == Stage.PENDED:
                await asyncio.gather(case.milestone(self.ladder(case.stage)), self._overdue())
            elif case.stage == Stage.APPROVED:
                await asyncio.gather(case.milestone(self.ladder(case.stage)), self._lapse())
            else:
                await case.milestone(self.ladder(case.stage))
        if not case.closed:
            # The Task written first: a run that ends with its write in flight leaves it behind.
            await self.ehr.settled()
            await case.continue_as_new(self.next_run, ready=lambda: self.quiet)
        await self.ehr.settled()
        await case.settle(ready=lambda: self.quiet)
        return case.outcome()

    @property
    def quiet(self) -> bool:
        """Nothing under way that a new run could not pick up."""
        return (
            self.ehr.quiet
            and self.checklist.quiet
            and self.news.quiet
            and self.wanted is None
            and not self.submitting
        )

    def next_run(self, snapshot: CaseSnapshot) -> PriorAuthInput:
        snapshot = self.ehr.carry(snapshot)
        snapshot.opened_by_request = self.opened_by_request
        return self.input.model_copy(update={"snapshot": snapshot})

    def ladder(self, stage: str) -> list[Step]:
        """The owner is reminded before a deadline and the supervisor told when it passes. A
        pended request's deadline is the payer's: only the supervisor hears of it. An approval
        reminds the owner before it runs out; running out is its own consequence."""
        if stage == Stage.PENDED:
            return [escalate(Role.SUPERVISOR)]
        if stage == Stage.APPROVED:
            return [remind(before_due=self.policy.deliver_remind_before)]
        return [remind(before_due=self.policy.remind_before), escalate(Role.SUPERVISOR)]

    def deadline(self, case: Case) -> datetime | None:
        policy, calendar = self.policy, self.input.calendar
        if case.stage == Stage.COLLECTING:
            since = case.moments.get("collecting_since", case.opened_at)
            return calendar.close_of_business(since, policy.collect_within)
        if case.stage == Stage.PENDED:
            window = (
                timedelta(hours=policy.expedited_hours)
                if self.input.expedited
                else timedelta(days=policy.standard_days)
            )
            return case.moments["submitted_at"] + window
        if case.stage == Stage.APPROVED:
            return case.moments.get("authorized_until")
        if case.stage == Stage.DENIED:
            return calendar.close_of_business(
                case.moments["decided_at"], policy.decide_appeal_within
            )
        if case.stage == Stage.APPEALING:
            peer = case.references.get("peer_to_peer") == "requested"
            days = policy.peer_to_peer_within if peer else policy.appeal_within
            return calendar.close_of_business(case.moments["appeal_started_at"], days)
        return None

    async def _overdue(self) -> None:
        """The payer's deadline passed with the request still pended: ask the payer once."""
        due = self.case.due_at
        if due is not None and await self.case.wait_until(due, Stage.PENDED):
            async with self.ehr.lock:
                if self.case.stage == Stage.PENDED:
                    await self.requests.inquire()

    async def _lapse(self) -> None:
        """The authorization ran out with the service not delivered: authorize again."""
        case = self.case
        until = case.moments.get("authorized_until")
        if until is None or not await case.wait_until(until, Stage.APPROVED):
            return
        number = case.references.pop("auth_number", "")
        case.count("reauthorizations")
        case.moments["collecting_since"] = workflow.now()
        case.move_to(
            Stage.COLLECTING,
            SYSTEM,
            f"Authorization {number or '(no number)'} lapsed with the service not delivered; "
            "collecting for a new request",
            kind=EventKind.LAPSED,
            details={"auth_number": number, "authorized_until": until.isoformat()},
        )
        self.news.tell()
        self.checklist.open(case.due_at)

    def _ready(self) -> None:
        """Every prerequisite met or waived while collecting: the request goes out by itself."""
        if self.case.stage == Stage.COLLECTING and self.checklist.satisfied:
            self.wanted = self.wanted or SYSTEM

    async def _submitter(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.wanted is not None)
            self.submitting = True
            async with self.ehr.lock:
                actor, note = self.wanted, self.wanted_note
                self.wanted, self.wanted_note = None, ""
                assert actor is not None
                if self.case.stage in PREPARING and self.checklist.satisfied:
                    await self.requests.submit(actor, note)
            self.submitting = False

    @workflow.query
    def detail(self) -> CaseDetail:
        return self.case.detail()

    # -- care-team actions --------------------------------------------------------------------

    @workflow.update
    def open_case(self, request: OpenCase) -> ActionAck:
        ack = self.case.ack()
        ack.created = not self.opened_by_request
        self.opened_by_request = True
        return ack

    @workflow.update
    def assign(self, action: Assign) -> ActionAck:
        self.case.assign(action.owner or action.actor.user_id, action.actor)
        self.checklist.owned_by(self.case.owner)
        return self.case.ack()

    @assign.validator
    def _check_assign(self, action: Assign) -> None:
        reassigning = action.owner not in (None, action.actor.user_id)
        self.case.authorize(action.actor, supervisor=reassigning)
        self.case.require("assign")
        if (action.owner or action.actor.user_id) == self.case.owner:
            raise errors.not_allowed(f"Case is already owned by {self.case.owner}")

    @workflow.update
    async def attach_document(self, action: AttachDocument) -> ActionAck:
        if action.prerequisite is None:
            # Supporting the request as a whole: checked in the EHR as the referral's documents.
            await self.ehr.claim(self._supporting(action))
        else:
            self.checklist.attach(action.actor, action.document, action.prerequisite)
        return self.case.ack()

    async def _supporting(self, action: AttachDocument) -> None:
        verdict = await self.ehr.confirm(
            action.actor,
            action.document,
            self.ehr.documents_on_file([action.document]),
            unverified=Verdict(verified=True, evidence=[Evidence(reference=action.document)]),
            still_fits=lambda: not self.case.closed,
        )
        if verdict:
            self.checklist.attach(action.actor, action.document, None)

    @attach_document.validator
    def _check_attach(self, action: AttachDocument) -> None:
        self._check(action.actor, "attach a document", *ATTACHING)
        if action.prerequisite is not None:
            self._known(action.prerequisite)

    @workflow.update
    def waive_prerequisite(self, action: WaivePrerequisite) -> ActionAck:
        self.checklist.waive(action.actor, action.prerequisite, action.reason)
        return self.case.ack()

    @waive_prerequisite.validator
    def _check_waive(self, action: WaivePrerequisite) -> None:
        self.case.authorize(action.actor, supervisor=True)
        self.case.require("waive a prerequisite", *PREPARING)
        item = self._known(action.prerequisite)
        if item.status in ("met", "waived"):
            raise errors.not_allowed(f"{item.title} is already {item.status}")

    @workflow.update
    async def submit_now(self, action: SubmitNow) -> ActionAck:
        self.wanted, self.wanted_note = action.actor, action.note
        # Answer with the payer's answer, or once the case says it waits on the payer.
        await workflow.wait_condition(
            lambda: (
                self.wanted is None
                and (not self.submitting or WAITING_ON_PAYER in self.case.moments)
            )
        )
        return self.case.ack()

    @submit_now.validator
    def _check_submit(self, action: SubmitNow) -> None:
        self._check(action.actor, "submit the request", *PREPARING)
        if self.wanted is not None or self.submitting:
            raise errors.not_allowed("A request is already being sent")
        if outstanding := self.checklist.outstanding:
            titles = ", ".join(self.case.checklist[name].title for name in outstanding)
            raise errors.not_allowed(f"Not every prerequisite is met or waived: {titles}")
        if missing := self.requests.missing():
            raise errors.not_allowed(f"The request cannot go out: {missing}")

    @workflow.update
    def record_payer_call(self, action: RecordPayerCall) -> ActionAck:
        case = self.case
        case.count("payer_calls")
        if action.peer_to_peer:
            case.references["peer_to_peer"] = "held"
        kind = "Peer-to-peer review" if action.peer_to_peer else "Payer call"
        case.record(
            EventKind.NOTE,
            action.actor,
            f"{kind} recorded, reference {action.reference_number}",
            details={
                "reference_number": action.reference_number,
                "note": action.note,
                "peer_to_peer": str(action.peer_to_peer).lower(),
            },
        )
        return case.ack()

    @record_payer_call.validator
    def _check_payer_call(self, action: RecordPayerCall) -> None:
        self._check(action.actor, "record a payer call")

    @workflow.update
    def start_appeal(self, action: StartAppeal) -> ActionAck:
        case = self.case
        case.count("appeals")
        case.moments["appeal_started_at"] = workflow.now()
        if action.peer_to_peer:
            case.references["peer_to_peer"] = "requested"
        else:
            case.references.pop("peer_to_peer", None)
        review = " with a peer-to-peer review" if action.peer_to_peer else ""
        case.move_to(
            Stage.APPEALING,
            action.actor,
            f"Appealing the denial{review}; a new request follows",
            details={"peer_to_peer": str(action.peer_to_peer).lower(), "note": action.note},
        )
        # The new request needs every prerequisite fresh again.
        self.checklist.check(self.checklist.outstanding)
        return case.ack()

    @start_appeal.validator
    def _check_appeal(self, action: StartAppeal) -> None:
        self._check(action.actor, "appeal", Stage.DENIED)

    @workflow.update
    def close_denied(self, action: CloseDenied) -> ActionAck:
        self.case.move_to(
            Stage.CLOSED_DENIED,
            action.actor,
            f"Closed without appeal: {action.reason}",
            kind=EventKind.CANCELLED,
            details={"reason": action.reason},
        )
        self.news.tell()
        return self.case.ack()

    @close_denied.validator
    def _check_close_denied(self, action: CloseDenied) -> None:
        self._check(action.actor, "close the denied request", *DECIDING_APPEAL)

    @workflow.update
    async def mark_delivered(self, action: MarkDelivered) -> ActionAck:
        await self.ehr.claim(self.closing.deliver(action))
        return self.case.ack()

    @mark_delivered.validator
    def _check_delivered(self, action: MarkDelivered) -> None:
        self._check(action.actor, "mark the service delivered", Stage.APPROVED)
        if self.ehr.busy:
            raise errors.not_allowed("The last action is still being verified in the EHR")

    @workflow.update
    async def cancel(self, action: Cancel) -> ActionAck:
        async with self.ehr.lock:
            await self.closing.cancel(action.actor, f"Cancelled: {action.reason}", action.reason)
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

    def _known(self, name: str):
        item = self.case.checklist.get(name)
        if item is None:
            known = ", ".join(self.case.checklist) or "none"
            raise errors.invalid(f"No prerequisite {name} on this case (it has: {known})")
        return item

    # -- the payer and the EHR ------------------------------------------------------------------

    @workflow.signal
    def payer_decided(self, decision: PasDecision) -> None:
        """The payer's decision on a pended request, from its notification."""
        self.requests.decided(decision, "notification")

    @workflow.signal
    def ehr_changed(self, event: EhrEvent) -> None:
        """Something about this case changed in the EHR (detection or a notification)."""
        self.ehr.notice(event)
