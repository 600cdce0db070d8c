"""A case's link to the EHR: claims verified with evidence, and the case mirrored as a FHIR Task.

A care-team claim ("scheduled", "completed") runs as a step that first asks the EHR for evidence.
The action answers once the EHR has answered, or sooner, once the case says it is waiting on the
EHR: verification then keeps retrying (an EHR down for an hour is waited out) and the step
finishes when it answers. Without evidence the claim goes back to the owner as rework.

A case opened without an EHR link (`enabled` False, as every case before this module) keeps its
claims as claimed and schedules no activity at all, so its history replays unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.fhir.evidence import EvidenceActivities
    from activities.fhir.models import (
        AppointmentCheck,
        DocumentsCheck,
        EhrEvent,
        ReportCheck,
        TaskMirror,
        Verdict,
    )
    from activities.fhir.task import TaskActivities
    from activities.staff import StaffActivities
    from workflows.care import queues
    from workflows.care.case import Case
    from workflows.care.escalation import NOTIFY_RETRY
    from workflows.care.models import SYSTEM, Actor, CaseSnapshot, EventKind, Role, StaffNotice

# No attempt limit: the EHR being down is waited out and nothing is lost. A care-team claim waits
# for its evidence at most VERIFY_WITHIN, though: it holds the case's claim lock meanwhile, and a
# long outage must not refuse every other claim; past it the claim goes back to its owner.
EHR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=2),
)
EHR_TIMEOUT = timedelta(seconds=60)
VERIFY_WITHIN = timedelta(hours=1)
ANSWER_WITHIN = timedelta(seconds=5)  # how long an action waits for the EHR before answering
CHECKS: dict[type, Callable[..., Any]] = {
    AppointmentCheck: EvidenceActivities.appointment_booked,
    ReportCheck: EvidenceActivities.report_filed,
    DocumentsCheck: EvidenceActivities.documents_received,
}
Check = AppointmentCheck | ReportCheck | DocumentsCheck

# What EHR news says for every pathway: an order with these statuses is withdrawn, and these
# resources report on the service done.
ORDER_WITHDRAWN = {"revoked", "entered-in-error"}
REPORTS = {"DiagnosticReport", "DocumentReference"}


class EhrLink:
    def __init__(self, case: Case, *, enabled: bool) -> None:
        self.case = case
        self.enabled = enabled
        self.lock = asyncio.Lock()  # one claim or EHR event is worked on at a time
        self.claims: set[asyncio.Task[None]] = set()
        self.events: list[EhrEvent] = []
        self.waiting = False
        self.mirrored: tuple[Any, ...] | None = None

    @property
    def busy(self) -> bool:
        """A claim is still waiting on the EHR."""
        return bool(self.claims)

    @property
    def quiet(self) -> bool:
        """No claim or EHR event is being worked on."""
        return not self.claims and not self.lock.locked()

    def carry(self, snapshot: CaseSnapshot) -> CaseSnapshot:
        """The link's part of a snapshot: whether the Task shows the case, and events not yet
        acted on (taken once the link is `quiet`)."""
        return snapshot.model_copy(
            update={
                "mirrored": self.mirrored == self._task_state(),
                "ehr_events": [event.model_dump(mode="json") for event in self.events],
            }
        )

    def resume(self, snapshot: CaseSnapshot) -> None:
        if snapshot.mirrored:
            self.mirrored = self._task_state()
        self.events = [EhrEvent.model_validate(event) for event in snapshot.ehr_events]

    def start(self, on_event: Callable[[EhrEvent], Awaitable[None]]) -> None:
        """Mirror the case as a Task and act on EHR events; call once from the workflow's run."""
        if self.enabled:
            asyncio.create_task(self._mirror())
            asyncio.create_task(self._watch(on_event))

    def notice(self, event: EhrEvent) -> None:
        if self.enabled:
            self.events.append(event)

    def appointment_booked(self, appointment: str | None) -> AppointmentCheck:
        """The check for the named appointment, or (None) for any booked for the case's order."""
        calendar, order = self.case.calendar, self.case.order
        today = calendar.local_date(workflow.now())  # earlier appointments no longer count
        return AppointmentCheck(
            order=order.resource,
            patient=order.patient,
            appointment=appointment,
            not_before=datetime.combine(today, time(0), ZoneInfo(calendar.timezone)),
        )

    def report_filed(self, report: str | None) -> ReportCheck:
        """The check for the named report, or (None) for any filed for the case's order."""
        order = self.case.order
        return ReportCheck(order=order.resource, patient=order.patient, report=report)

    def documents_on_file(self, documents: list[str]) -> DocumentsCheck:
        """The check that each listed DocumentReference is current and the patient's."""
        order = self.case.order
        return DocumentsCheck(order=order.resource, patient=order.patient, documents=documents)

    async def claim(self, step: Coroutine[Any, Any, None]) -> None:
        """Run a care-team claim; return when it is done or the case shows it waits on the EHR."""
        if not self.enabled:
            await step
            return
        job = asyncio.create_task(self._locked(step))
        self.claims.add(job)
        job.add_done_callback(self.claims.discard)
        await workflow.wait_condition(lambda: job.done() or self.waiting)
        if job.done() and job.exception():
            raise job.exception()  # type: ignore[misc]

    async def verify(self, check: Check, *, unverified: Verdict) -> Verdict:
        """Ask the EHR for evidence. Without an EHR link the claim stands as `unverified` says."""
        if not self.enabled:
            return unverified
        handle = workflow.start_activity_method(
            CHECKS[type(check)],
            check,
            task_queue=queues.ehr(),
            schedule_to_close_timeout=VERIFY_WITHIN,
            start_to_close_timeout=EHR_TIMEOUT,
            retry_policy=EHR_RETRY,
        )
        try:
            await workflow.wait_condition(handle.done, timeout=ANSWER_WITHIN)
        except TimeoutError:
            self._waiting_on_ehr(f"verify {_claimed(check)}")
        gave_up = evicted = False
        try:
            verdict = await handle
        except ActivityError as err:
            # Refused by the EHR (a 4xx), or silent past VERIFY_WITHIN: the owner sees why.
            gave_up = err.retry_state == RetryState.TIMEOUT
            verdict = Verdict(verified=False, reason=_refusal(err))
        except GeneratorExit:
            # The worker let the case go from its cache mid-wait: nothing happened to the case,
            # and outside its run there is no clock to record by.
            evicted = True
            raise
        finally:
            if not evicted:
                self._ehr_answered(gave_up=gave_up)
        if verdict.verified:
            self.case.record(
                EventKind.VERIFIED,
                SYSTEM,
                "Verified in the EHR: " + ", ".join(e.reference for e in verdict.evidence),
                evidence=verdict.evidence,
            )
        return verdict

    async def confirm(
        self,
        actor: Actor,
        claim: str,
        check: Check,
        *,
        unverified: Verdict,
        still_fits: Callable[[], bool],
    ) -> Verdict | None:
        """A care-team claim checked in the EHR: the verdict when it holds, None when it went back
        to its owner as rework, or when the case moved on (`still_fits` false) meanwhile."""
        verdict = await self.verify(check, unverified=unverified)
        if not still_fits():
            return None
        if not verdict.verified:
            await self.rework(actor, claim, verdict)
            return None
        return verdict

    async def rework(self, actor: Actor, claim: str, verdict: Verdict) -> None:
        """The claim did not hold up: back to the owner with the reason, and counted."""
        case = self.case
        loops = case.count("rework")
        case.record(
            EventKind.REWORK,
            actor,
            f"Not verified: {verdict.reason}. Back to {case.owner or case.team} (rework {loops})",
            details={"claim": claim, "reason": verdict.reason},
            evidence=verdict.evidence,
        )
        notice = StaffNotice(
            case_id=case.case_id,
            kind=EventKind.REWORK,
            team=case.team,
            role=Role.COORDINATOR,
            user_id=case.owner,
            message=f"Case {case.case_id}: {claim} was not verified in the EHR; see the case",
        )
        if case.notices_beside:
            case.notify(notice)
            return
        await workflow.execute_activity_method(
            StaffActivities.notify,
            notice,
            task_queue=queues.messaging(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=NOTIFY_RETRY,
        )

    async def settled(self) -> None:
        """Before the workflow completes: no claim still asking the EHR (a case cancelled while
        one was verified waits for it, bounded by VERIFY_WITHIN), and the Task in the EHR shows
        the final stage."""
        if self.enabled:
            await self.case.wait(
                lambda: self.quiet and self.mirrored == self._task_state(), settling=True
            )

    # -- background ---------------------------------------------------------------------------

    async def _locked(self, step: Coroutine[Any, Any, None]) -> None:
        async with self.lock:
            await step

    async def _watch(self, on_event: Callable[[EhrEvent], Awaitable[None]]) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.events))
            event = self.events.pop(0)
            async with self.lock:
                await on_event(event)

    async def _mirror(self) -> None:
        """Rewrite the case's Task whenever its stage, owner or due date changed."""
        case = self.case
        while True:
            await workflow.wait_condition(lambda: self._task_state() != self.mirrored)
            state = self._task_state()
            task = case.task_states[case.stage]
            mirror = TaskMirror(
                case_id=case.case_id,
                order=case.order.resource,
                patient=case.order.patient,
                status=task.status,
                business_status=task.business_status,
                status_reason=task.status_reason,
                team=case.team,
                owner=case.owner,
                due_at=case.due_at,
            )
            try:
                written = await workflow.execute_activity_method(
                    TaskActivities.mirror_task,
                    mirror,
                    task_queue=queues.ehr(),
                    start_to_close_timeout=EHR_TIMEOUT,
                    retry_policy=EHR_RETRY,
                )
                refused = written.refused
            except ActivityError as err:
                refused = _refusal(err)
            if refused:
                # The same write would be refused again; the next change tries anew.
                case.record(
                    EventKind.EXCEPTION_RAISED,
                    SYSTEM,
                    f"The EHR refused the case's Task: {refused}",
                )
            else:
                case.references["task"] = written.task
            self.mirrored = state

    def _task_state(self) -> tuple[Any, ...]:
        return (self.case.stage, self.case.owner, self.case.due_at)

    def _waiting_on_ehr(self, what: str) -> None:
        if not self.waiting:
            self.waiting = True
            self.case.moments["waiting_on_ehr_since"] = workflow.now()
            self.case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"Waiting on the EHR to {what}; retrying until it answers",
            )

    def _ehr_answered(self, *, gave_up: bool = False) -> None:
        if self.waiting:
            self.waiting = False
            self.case.moments.pop("waiting_on_ehr_since", None)
            said = "Stopped waiting on the EHR" if gave_up else "The EHR answered again"
            self.case.record(EventKind.EXCEPTION_CLEARED, SYSTEM, said)


def _refusal(err: ActivityError) -> str:
    cause = err.cause
    if err.retry_state == RetryState.TIMEOUT or isinstance(cause, ActivityTimeout):
        hours = VERIFY_WITHIN.total_seconds() / 3600
        last = f" (last: {cause.message})" if isinstance(cause, ApplicationError) else ""
        return f"the EHR did not answer for {hours:g} hour{last}; claim it again once it is back"
    if isinstance(cause, ApplicationError):
        return cause.message
    return "the EHR call failed"


def _claimed(check: Check) -> str:
    if isinstance(check, AppointmentCheck):
        return check.appointment or f"an appointment for {check.order}"
    if isinstance(check, ReportCheck):
        return check.report or f"a report for {check.order}"
    return ", ".join(check.documents)
