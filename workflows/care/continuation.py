"""A long-lived case going on in a new run: when its history grows past a bound (or Temporal
suggests it), the case continues as new from a snapshot of itself. Mixed into `Case` (see
case.py), whose state it saves and restores."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.care.models import CaseSnapshot
    from workflows.care.trail import AuditTrail

# Cases started before this never continue as new; since, they do when their history grows.
CONTINUE_PATCH = "continue-as-new"
HISTORY_EVENTS = 1_000  # the kit's own bound, far under Temporal's 51,200: a replay stays quick
HISTORY_BYTES = 2 * 1024 * 1024  # and Temporal's 50 MB


class Continuation:
    def _resume(self, snapshot: CaseSnapshot, pathway: str, version: str) -> None:
        self.stage = snapshot.stage
        self.owner = snapshot.owner
        self.stalled = snapshot.stalled
        self.opened_at = snapshot.opened_at
        self.counters = dict(snapshot.counters)
        self.references = dict(snapshot.references)
        self.moments = dict(snapshot.moments)
        self.timeline = list(snapshot.timeline)
        self.checklist = {item.name: item for item in snapshot.checklist}
        self.seq = snapshot.seq
        self.climbed = list(snapshot.climbed)
        self.run_number = snapshot.run + 1
        self.trail = AuditTrail(
            case_id=self.case_id,
            pathway=pathway,
            version=version,
            last_hash=snapshot.last_hash,
            hash_scheme=snapshot.hash_scheme,
        )
        self.due_at = self.deadline(self)  # recomputed from the snapshot, never carried
        self._publish()

    def snapshot(self) -> CaseSnapshot:
        """The case as its next run starts from (see `continue_as_new`)."""
        return CaseSnapshot(
            stage=self.stage,
            owner=self.owner,
            stalled=self.stalled,
            opened_at=self.opened_at,
            counters=dict(self.counters),
            references=dict(self.references),
            moments=dict(self.moments),
            timeline=list(self.timeline),
            seq=self.seq,
            last_hash=self.trail.last_hash,
            hash_scheme=self.trail.hash_scheme,
            climbed=list(self.climbed),
            run=self.run_number,
            checklist=list(self.checklist.values()),
        )

    def _history_full(self) -> bool:
        if not self.continues or self.closed:
            return False
        if not self.continuing:
            info = workflow.info()
            self.continuing = (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self.history_events
                or info.get_current_history_size() >= HISTORY_BYTES
            )
        return self.continuing

    async def continue_as_new(
        self,
        next_input: Callable[[CaseSnapshot], object],
        *,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """End this run and go on in a new one from a snapshot of the case: same id, same owner,
        deadlines recomputed from the snapshot, the ledger's numbering and chain unbroken.
        `next_input` turns the snapshot into the workflow's input once `ready` holds."""
        await self.settle(ready=ready)
        workflow.continue_as_new(next_input(self.snapshot()))
