"""The prerequisites a request needs, as the case's checklist: each verified in the EHR with its
evidence, re-checked when a document is attached or the EHR reports a change, and reopened when
its evidence goes stale before the payer has decided.

Freshness is judged on the case's clock: evidence the EHR still counts but whose `expires_at` the
case has passed is stale, so an expiry never depends on when an activity happened to run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.fhir.models import PrerequisiteCheck, PrerequisiteFound
    from activities.fhir.prerequisites import PrerequisiteActivities
    from workflows.care import queues
    from workflows.care.calls import CALL_TIMEOUT, RETRY, patiently
    from workflows.care.case import Case
    from workflows.care.models import SYSTEM, Actor, ChecklistItem, EventKind, Role, StaffNotice
    from workflows.prior_auth.models import UNDECIDED, PriorAuthInput
    from workflows.prior_auth.rules import Prerequisite, PrerequisiteKind

OPEN, MET, WAIVED, EXPIRED = "open", "met", "waived", "expired"
DONE = {MET, WAIVED}
NOUNS = {
    PrerequisiteKind.CLINICAL_NOTES: "Clinical note",
    PrerequisiteKind.IMAGING: "Imaging report",
    PrerequisiteKind.LAB: "Lab result",
    PrerequisiteKind.CONSERVATIVE_THERAPY: "Conservative therapy",
    PrerequisiteKind.COVERAGE: "Coverage",
}
WARN, EXPIRE = "warn", "expire"
# moments key: the expiry the owner was warned of (the web UI leaves "_seen" moments out).
WARNED = "{}_warned_seen"
ATTACHED = "attached:{}"  # references key: the documents attached for an item, comma-separated
SUPPORTING = "attached"  # references key: documents attached for the request as a whole


class Checklist:
    def __init__(self, case: Case, order: PriorAuthInput, lock: asyncio.Lock) -> None:
        self.case = case
        self.input = order
        self.lock = lock  # the EHR link's: one EHR step at a time
        self.rules = {p.name: p for p in order.prerequisites}
        self.queued: list[str] = []  # items to (re-)check, in checklist order
        self.checking = False
        self.on_change: Callable[[], None] = lambda: None  # something became met or waived

    # -- reading ------------------------------------------------------------------------------

    @property
    def items(self) -> list[ChecklistItem]:
        return list(self.case.checklist.values())

    @property
    def satisfied(self) -> bool:
        return all(item.status in DONE for item in self.items)

    @property
    def outstanding(self) -> list[str]:
        return [item.name for item in self.items if item.status not in DONE]

    @property
    def quiet(self) -> bool:
        return not self.queued and not self.checking

    def documents(self) -> list[str]:
        """Every document on file for the request: attached by the care team, or the evidence
        of a met prerequisite, each once."""
        found: list[str] = []
        keys = [ATTACHED.format(name) for name in self.case.checklist] + [SUPPORTING]
        for key in keys:
            found += [d for d in self.case.references.get(key, "").split(", ") if d]
        for item in self.items:
            if item.status == MET:
                found += [e.reference for e in item.evidence]
        return [d for d in dict.fromkeys(found) if d.startswith("DocumentReference/")]

    # -- changes ------------------------------------------------------------------------------

    def open(self, due_at: datetime | None) -> None:
        """Every prerequisite of the rule on the checklist, open, due with the collecting stage;
        or, on a re-authorization, every one reopened (waivers stand) and checked again."""
        for rule in self.input.prerequisites:
            item = self.case.checklist.get(rule.name)
            if item is None:
                item = ChecklistItem(name=rule.name, title=rule.title)
                self.case.checklist[rule.name] = item
            elif item.status == WAIVED:
                continue
            item.status, item.evidence, item.note = OPEN, [], None
            item.observed_at = item.expires_at = None
            item.owner, item.due_at = self.case.owner, due_at
        self.check(self.outstanding)

    def owned_by(self, owner: str | None) -> None:
        for item in self.items:
            item.owner = owner

    def attach(self, actor: Actor, document: str, name: str | None) -> None:
        key = ATTACHED.format(name) if name else SUPPORTING
        listed = [d for d in self.case.references.get(key, "").split(", ") if d]
        self.case.references[key] = ", ".join(dict.fromkeys([*listed, document]))
        what = f" for {self.case.checklist[name].title}" if name else " supporting the request"
        self.case.record(
            EventKind.DOCUMENTS_RECEIVED,
            actor,
            f"Attached {document}{what}",
            details={"document": document, "prerequisite": name or ""},
        )
        self.check([name] if name else [])

    def waive(self, actor: Actor, name: str, reason: str) -> None:
        item = self.case.checklist[name]
        item.status, item.note = WAIVED, reason
        self.case.record(
            EventKind.WAIVED,
            actor,
            f"Waived: {item.title}",
            details={"prerequisite": name, "reason": reason},
        )
        self.on_change()

    def check(self, names: list[str]) -> None:
        """Check these items in the EHR (waived ones never are) when the EHR is free."""
        for name in names:
            if name not in self.queued and self.case.checklist[name].status != WAIVED:
                self.queued.append(name)

    # -- background ---------------------------------------------------------------------------

    def start(self) -> None:
        asyncio.create_task(self._checker())
        asyncio.create_task(self._freshness())

    async def _checker(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.queued))
            self.checking = True
            async with self.lock:
                names, self.queued = self.queued, []
                changed = await self._check(names)
            self.checking = False
            if changed:
                self.on_change()

    async def _check(self, names: list[str]) -> bool:
        checks = [self._request(self.rules[name]) for name in names]
        handles = [
            workflow.start_activity_method(
                PrerequisiteActivities.check,
                check,
                task_queue=queues.ehr(),
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=RETRY,
            )
            for check in checks
        ]
        await patiently(self.case, handles, "the EHR")
        changed = False
        for name, handle in zip(names, handles, strict=True):
            try:
                found = await handle
            except ActivityError as err:
                cause = err.cause
                reason = cause.message if isinstance(cause, ApplicationError) else "check failed"
                found = PrerequisiteFound(met=False, reason=reason[:500])
            changed = self._found(name, found) or changed
        return changed

    def _request(self, rule: Prerequisite) -> PrerequisiteCheck:
        order = self.case.order
        return PrerequisiteCheck(
            order=order.resource,
            patient=order.patient,
            prerequisite=rule,
            service_date=self.case.calendar.local_date(workflow.now()),
            coverage=self.input.coverage,
            as_of=workflow.now(),
            documents=[
                d for d in self.case.references.get(ATTACHED.format(rule.name), "").split(", ") if d
            ],
        )

    def _found(self, name: str, found: PrerequisiteFound) -> bool:
        """Apply a check's answer; True when the item became met."""
        item, now = self.case.checklist[name], workflow.now()
        if item.status == WAIVED:  # waived while it was being checked
            return False
        stale = found.met and found.expires_at is not None and found.expires_at <= now
        if found.met and not stale:
            if item.status == MET and item.evidence == found.evidence:
                item.expires_at = found.expires_at
                return False
            item.status, item.note = MET, None
            item.evidence, item.observed_at = found.evidence, found.observed_at
            item.expires_at = found.expires_at
            if found.coverage:
                self.case.references["coverage"] = found.coverage
            if found.payer:
                self.case.references["payer"] = found.payer
            until = f" (counts until {self._day(found.expires_at)})" if found.expires_at else ""
            self.case.record(
                EventKind.VERIFIED,
                SYSTEM,
                f"Prerequisite met: {item.title}{until}",
                details={
                    "prerequisite": name,
                    "expires_at": found.expires_at.isoformat() if found.expires_at else "",
                },
                evidence=found.evidence,
            )
            return True
        if stale:
            if item.status != EXPIRED:  # said once, when it went stale
                self._expire(item, found.observed_at, found.expires_at)
        elif item.status == MET:
            item.status, item.note = OPEN, found.reason
            item.evidence, item.observed_at, item.expires_at = [], None, None
            self.case.record(
                EventKind.EXCEPTION_RAISED,
                SYSTEM,
                f"Prerequisite no longer met: {item.title}: {found.reason}",
                details={"prerequisite": name, "reason": found.reason},
            )
        elif item.status == OPEN:
            item.note = found.reason  # an expired item keeps saying what expired
        return False

    async def _freshness(self) -> None:
        """Durable timers on met items' evidence while the request is undecided: the owner is
        warned `remind_before_expiry` days before it goes stale; when it does, the item reopens,
        the reason is recorded, and the EHR is asked again."""
        while True:
            watched = self._watched()
            if await self._until_first(watched):
                now = workflow.now()
                for name, what, at in watched:
                    item = self.case.checklist[name]
                    if at > now or item.status != MET:
                        continue
                    if what == WARN:
                        self._warn(item)
                    else:
                        self._expire(item, item.observed_at, at)
                        self.check([name])

    async def _until_first(self, watched: list[tuple[str, str, datetime]]) -> bool:
        """Wait for the first moment in `watched`; False if what is watched changed first."""
        soonest = min((at for _, _, at in watched), default=None)
        delay = soonest - workflow.now() if soonest else None
        if delay is not None and delay.total_seconds() <= 0:
            return True
        try:
            await workflow.wait_condition(lambda: self._watched() != watched, timeout=delay)
        except TimeoutError:
            return True
        return False

    def _watched(self) -> list[tuple[str, str, datetime]]:
        """(item, WARN or EXPIRE, when) for every met item whose evidence goes stale."""
        if self.case.stage not in UNDECIDED:
            return []
        ahead = timedelta(days=self.input.policy.remind_before_expiry)
        watched = []
        for item in self.items:
            if item.status != MET or item.expires_at is None:
                continue
            if self.case.moments.get(WARNED.format(item.name)) != item.expires_at:
                watched.append((item.name, WARN, item.expires_at - ahead))
            watched.append((item.name, EXPIRE, item.expires_at))
        return watched

    def _warn(self, item: ChecklistItem) -> None:
        case = self.case
        case.moments[WARNED.format(item.name)] = item.expires_at
        summary = f"{item.title}: the evidence stops counting on {self._day(item.expires_at)}"
        case.record(
            EventKind.REMINDED,
            SYSTEM,
            f"Reminded {case.owner or 'the ' + case.team + ' team'}: {summary}",
            details={"prerequisite": item.name, "expires_at": item.expires_at.isoformat()},
        )
        case.notify(
            StaffNotice(
                case_id=case.case_id,
                kind=EventKind.REMINDED,
                team=case.team,
                role=Role.COORDINATOR,
                user_id=case.owner,
                message=f"Case {case.case_id}: a prerequisite goes stale soon; see the case",
                due_at=item.expires_at,
            )
        )

    def _expire(self, item: ChecklistItem, observed: datetime | None, at: datetime | None) -> None:
        noun = NOUNS[self.rules[item.name].kind]
        dated = f" from {self._day(observed)}" if observed else ""
        item.status = EXPIRED
        item.note = f"{noun}{dated} expired on {self._day(at)}; collect a new one"
        item.evidence, item.observed_at, item.expires_at = [], observed, at
        self.case.record(
            EventKind.EXPIRED,
            SYSTEM,
            f"{item.title}: {item.note}",
            details={
                "prerequisite": item.name,
                "observed_at": observed.isoformat() if observed else "",
                "expires_at": at.isoformat() if at else "",
            },
        )

    def _day(self, moment: datetime | None) -> str:
        if moment is None:
            return "an unknown date"
        # A record's date-only date counts from 00:00 UTC (activities/fhir/prerequisites.py):
        # named in UTC, it reads as the date the record carries.
        day = moment.astimezone(UTC).date()
        year = f", {day.year}" if day.year != workflow.now().year else ""
        return f"{day:%b} {day.day}{year}"
