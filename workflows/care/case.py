"""A case: the state every pathway keeps, and the moves it makes with it.

Pathways hold one `Case`, change it from update handlers (which run synchronously after their
validators pass) and drive time from `run` with `milestone` and `wait_until`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.care import errors, search
    from workflows.care.calendar import BusinessCalendar
    from workflows.care.continuation import CONTINUE_PATCH, HISTORY_EVENTS, Continuation
    from workflows.care.escalation import NOTICES_BESIDE_PATCH, Escalation
    from workflows.care.models import (
        SYSTEM,
        ActionAck,
        Actor,
        CaseDetail,
        CaseOutcome,
        CaseSnapshot,
        ChecklistItem,
        EventKind,
        Evidence,
        OrderSummary,
        Role,
        TaskState,
        TimelineEvent,
    )
    from workflows.care.trail import AuditTrail

TIMELINE_KEPT = 50  # events the workflow itself keeps; the ledger keeps them all


class Case(Escalation, Continuation):
    """State and moves of one case. `task_states` maps every stage to its FHIR Task reading.
    Its deadlines' ladder is in `escalation.py`, its going on in a new run in `continuation.py`."""

    def __init__(
        self,
        *,
        case_id: str,
        case_type: str,
        stage: str,
        team: str,
        priority: str,
        location: str | None,
        order: OrderSummary,
        calendar: BusinessCalendar,
        task_states: Mapping[str, TaskState],
        closed_stages: Iterable[str],
        deadline: Callable[[Case], datetime | None],
        pathway: str,
        pathway_version: str,
        snapshot: CaseSnapshot | None = None,
        history_events: int = HISTORY_EVENTS,
    ) -> None:
        """A new case, opened now; or, with `snapshot`, the case going on in a new run."""
        self.case_id = case_id
        self.case_type = case_type
        self.stage = stage
        self.team = team
        self.priority = priority
        self.location = location
        self.order = order
        self.calendar = calendar
        self.task_states = dict(task_states)
        self.closed_stages = frozenset(closed_stages)
        self.deadline = deadline
        self.notices_beside = workflow.patched(NOTICES_BESIDE_PATCH)
        self.continues = workflow.patched(CONTINUE_PATCH)
        self.deliveries: set[asyncio.Task[None]] = set()
        self.history_events = history_events
        self.continuing = False
        if snapshot is not None:
            self._resume(snapshot, pathway, pathway_version)
            return
        self.owner: str | None = None
        self.due_at: datetime | None = None
        self.stalled = False
        self.counters: dict[str, int] = {}
        self.references: dict[str, str] = {}
        self.moments: dict[str, datetime] = {}
        self.timeline: list[TimelineEvent] = []
        self.checklist: dict[str, ChecklistItem] = {}
        self.seq = 0
        self.climbed: list[str] = []
        self.run_number = 1
        self.trail = AuditTrail(case_id=case_id, pathway=pathway, version=pathway_version)
        self.opened_at = workflow.now()
        self.record(
            EventKind.OPENED,
            SYSTEM,
            f"{case_type} case opened for {order.resource}",
            stage_after=stage,
        )
        self.due_at = deadline(self)
        self._publish()

    # -- reading ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.stage in self.closed_stages

    def detail(self) -> CaseDetail:
        return CaseDetail(
            case_id=self.case_id,
            case_type=self.case_type,
            stage=self.stage,
            task=self.task_states[self.stage],
            closed=self.closed,
            priority=self.priority,
            team=self.team,
            owner=self.owner,
            location=self.location,
            order=self.order,
            opened_at=self.opened_at,
            due_at=self.due_at,
            stalled=self.stalled,
            counters=dict(self.counters),
            references=dict(self.references),
            moments=dict(self.moments),
            timeline=list(self.timeline),
            ledger_pending=self.trail.pending,
            events=self.seq,
            ledger_error=self.trail.failure,
            notices_pending=len(self.deliveries),
            run=self.run_number,
            checklist=list(self.checklist.values()),
        )

    def ack(self) -> ActionAck:
        """An action's answer: where the case stands, in a few fields (see `ActionAck`)."""
        return ActionAck(
            case_id=self.case_id,
            stage=self.stage,
            closed=self.closed,
            owner=self.owner,
            events=self.seq,
        )

    def outcome(self) -> CaseOutcome:
        return CaseOutcome(
            case_id=self.case_id,
            stage=self.stage,
            closed_at=workflow.now(),
            counters=dict(self.counters),
        )

    # -- checks for update validators ---------------------------------------------------------

    def authorize(self, actor: Actor, *, supervisor: bool = False) -> None:
        """Refuse an actor whose role or team may not act on this case."""
        if actor.role == Role.ADMIN:
            return
        if actor.role not in (Role.COORDINATOR, Role.SUPERVISOR):
            raise errors.forbidden(f"The {actor.role.value} role cannot act on cases")
        if actor.team != self.team:
            raise errors.forbidden(f"This case belongs to team {self.team}", other_team=True)
        if supervisor and actor.role != Role.SUPERVISOR:
            raise errors.forbidden("Only a supervisor of the team can do this")

    def require(self, action: str, *stages: str) -> None:
        """Refuse an action that does not fit the current stage, naming where it would fit."""
        if self.closed:
            raise errors.not_allowed(f"Case is {self.stage}; no more actions are accepted")
        if stages and self.stage not in stages:
            allowed = ", ".join(stages)
            raise errors.not_allowed(
                f"Cannot {action} while the case is {self.stage} (allowed when: {allowed})"
            )

    # -- moves ---------------------------------------------------------------------------------

    def record(
        self,
        kind: EventKind,
        actor: Actor,
        summary: str,
        *,
        stage_before: str | None = None,
        stage_after: str | None = None,
        details: Mapping[str, str] | None = None,
        evidence: Iterable[Evidence] = (),
    ) -> None:
        """Add an event to the timeline and, hash-chained, to the audit ledger."""
        self.seq += 1
        event = TimelineEvent(
            seq=self.seq,
            at=workflow.now(),
            kind=kind,
            actor=actor.user_id,
            role=actor.role,
            summary=summary,
            stage_before=stage_before,
            stage_after=stage_after,
            details=dict(details or {}),
            evidence=list(evidence),
        )
        self.timeline.append(event)
        del self.timeline[:-TIMELINE_KEPT]
        self.trail.add(
            event,
            case_type=self.case_type,
            team=self.team,
            location=self.location,
            priority=self.priority,
            case_closed=stage_after is not None and stage_after in self.closed_stages,
        )

    def count(self, counter: str) -> int:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return self.counters[counter]

    def move_to(
        self,
        stage: str,
        actor: Actor,
        summary: str,
        *,
        kind: EventKind = EventKind.STAGE_CHANGED,
        details: Mapping[str, str] | None = None,
        evidence: Iterable[Evidence] = (),
    ) -> None:
        """Enter a new stage, with its own deadline and the stalled flag cleared."""
        before, self.stage = self.stage, stage
        self.due_at = self.deadline(self)
        self.stalled = False
        self.climbed = []
        self.record(
            kind,
            actor,
            summary,
            stage_before=before,
            stage_after=stage,
            details=details,
            evidence=evidence,
        )
        self._publish()

    def assign(self, owner: str, actor: Actor) -> None:
        previous = self.owner
        self.owner = owner
        summary = f"Claimed by {owner}" if owner == actor.user_id else f"Assigned to {owner}"
        if previous and previous != owner:
            summary += f" (was {previous})"
        self.record(EventKind.ASSIGNED, actor, summary, details={"owner": owner})
        self._publish()

    # -- life of the workflow -----------------------------------------------------------------

    def keep_trail(self) -> None:
        """Start writing the audit trail; call first thing in the workflow's run."""
        self.trail.start()

    async def settle(self, *, ready: Callable[[], bool] = lambda: True) -> None:
        """Before the workflow completes or continues as new: every action answered, every notice
        delivered or given up on, every event in the ledger, and `ready` (the pathway's own)."""
        await self.wait(
            lambda: (
                workflow.all_handlers_finished()
                and not self.deliveries
                and self.trail.idle
                and ready()
            ),
            settling=True,
        )

    async def wait(
        self,
        done: Callable[[], bool],
        *,
        within: timedelta | None = None,
        settling: bool = False,
    ) -> bool:
        """Wait until `done`, or for at most `within`; False if it did not come. Every wait of the case's run goes
        through here: it ends early, with False, when the history is due to continue as new
        (`continuing`), and fails the workflow task when the ledger has refused an entry."""

        def woken() -> bool:
            return (
                done() or self.trail.failure is not None or (not settling and self._history_full())
            )

        try:
            await workflow.wait_condition(woken, timeout=within)
        except TimeoutError:
            return False
        finally:
            self.trail.check()
        return done()

    # -- visibility ------------------------------------------------------------------------------

    def _publish(self) -> None:
        """Mirror the queue-relevant state into search attributes (ids and codes only, no PHI)."""
        updates = [
            search.CASE_TYPE.value_set(self.case_type),
            search.STAGE.value_set(self.stage),
            search.OWNER_TEAM.value_set(self.team),
            search.PRIORITY.value_set(self.priority),
            search.STALLED.value_set(self.stalled),
            search.OWNER.value_set(self.owner) if self.owner else search.OWNER.value_unset(),
            search.DUE_AT.value_set(self.due_at) if self.due_at else search.DUE_AT.value_unset(),
            search.LOCATION.value_set(self.location)
            if self.location
            else search.LOCATION.value_unset(),
        ]
        workflow.upsert_search_attributes(updates)
