"""The case's audit trail: every timeline event goes to the ledger, hash-chained, in order.

A background task in the workflow writes pending entries with a local activity; the ledger
stores each (case, seq) once, so activity retries and replays never duplicate or reorder.

Entries are written once the workflow task that recorded them has completed (a 1 ms timer ends
it first), and a write takes exactly the entries recorded before that timer. So:
- an entry is stored as the case's history has it. A worker killed after a write but before its
  task completed would otherwise leave an entry whose retried task records it again at another
  time: the ledger refuses the second (another hash under the same number) and the case holds;
- which entries a write takes never depends on when, within a workflow task, an action arrived
  (Temporal may hand an action to a replaying case before a local activity's result, and after
  it when the case ran: a batch taken at that moment differed, and the history did not replay);
- an action answers as soon as the workflow accepts it, and its entries follow a few
  milliseconds later (the case's detail counts them as `ledger_pending` meanwhile).
Cases started before this was so (no `ledger-after-task` marker) write as they did: an action's
entries after its reply, everything else in the task that recorded it.

When the ledger refuses an entry (one already stored under the same number with another hash),
retrying cannot help: the case says so in its detail, a metric counts it, and the case's next
wait fails its workflow task (`LedgerBroken`), which Temporal retries until the cause is fixed.
Nothing is skipped and the case never completes with a gap in its proof.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ledger.append import LedgerActivities
    from workflows.care.chain import GENESIS, link
    from workflows.care.models import HASH_SCHEME, LedgerBatch, LedgerEntry, TimelineEvent

# Cases started before the ledger existed replay without it.
LEDGER_PATCH = "audit-ledger"
# Cases started before replies went first write every entry before the reply.
REPLY_FIRST_PATCH = "ledger-after-reply"
# Cases started before entries waited for their workflow task to complete write them in it.
AFTER_TASK_PATCH = "ledger-after-task"
# Cases started before hashes covered the structured event hash the summary's wording too.
STRUCTURED_HASH_PATCH = "ledger-structured-hash"
OPENING_UPDATE = "open_case"  # the kit's name for the update that opens a case
REPLY_FIRST_DELAY = timedelta(milliseconds=1)  # a timer, only to end the workflow task first
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
LEDGER_FAILURES = "followthrough_ledger_failures"


class LedgerBroken(Exception):
    """Fails the workflow task (not the case): Temporal retries it until the ledger is fixed."""


class AuditTrail:
    def __init__(
        self,
        *,
        case_id: str,
        pathway: str,
        version: str,
        last_hash: str = GENESIS,
        hash_scheme: int | None = None,
    ) -> None:
        self.case_id = case_id
        self.pathway = pathway
        self.version = version
        self.last_hash = last_hash
        if hash_scheme is None:
            hash_scheme = HASH_SCHEME if workflow.patched(STRUCTURED_HASH_PATCH) else 1
        self.hash_scheme = hash_scheme
        self.unsent: list[LedgerEntry] = []
        self.writing = False
        self.after_reply = False
        self.failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Entries recorded but not yet stored in the ledger."""
        return len(self.unsent)

    def add(
        self,
        event: TimelineEvent,
        *,
        case_type: str,
        team: str,
        location: str | None,
        priority: str | None,
        case_closed: bool,
    ) -> None:
        entry = LedgerEntry(
            case_id=self.case_id,
            seq=event.seq,
            at=event.at,
            kind=event.kind,
            actor=event.actor,
            role=event.role,
            summary=event.summary,
            stage_before=event.stage_before,
            stage_after=event.stage_after,
            details=event.details,
            evidence=event.evidence,
            case_type=case_type,
            team=team,
            location=location,
            priority=priority,
            pathway=self.pathway,
            pathway_version=self.version,
            case_closed=case_closed,
            prev_hash=self.last_hash,
            hash_scheme=self.hash_scheme,
        )
        entry.hash = link(entry.prev_hash, entry.content())
        self.last_hash = entry.hash
        self.unsent.append(entry)
        update = workflow.current_update_info()
        if update is not None and update.name != OPENING_UPDATE:
            self.after_reply = True

    def start(self) -> None:
        """Start writing in the background; call once from the workflow's run."""
        if self.task is None:
            self.task = asyncio.create_task(self._keep())

    @property
    def idle(self) -> bool:
        """Every entry so far is in the ledger."""
        return not self.unsent and not self.writing

    def check(self) -> None:
        """Raise `LedgerBroken` once the ledger has refused an entry."""
        if self.failure is not None:
            raise LedgerBroken(self.failure)

    async def _keep(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.unsent))
            if not workflow.patched(LEDGER_PATCH):
                self.unsent.clear()
                continue
            self.writing = True
            if workflow.patched(AFTER_TASK_PATCH):
                # What this workflow task recorded is written once the task has completed, as
                # recorded: see the module's docstring.
                count = len(self.unsent)
                await workflow.sleep(REPLY_FIRST_DELAY)
                batch = self.unsent[:count]
            else:
                if self.after_reply and workflow.patched(REPLY_FIRST_PATCH):
                    await workflow.sleep(REPLY_FIRST_DELAY)
                self.after_reply = False
                batch = list(self.unsent)
            try:
                await workflow.execute_local_activity_method(
                    LedgerActivities.append,
                    LedgerBatch(entries=batch),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=LEDGER_RETRY,
                )
            except (ActivityError, ApplicationError) as err:
                # Only a refusal gets here (anything else is retried): stop writing, loudly. A
                # local activity's failure may arrive as itself or wrapped in an ActivityError.
                cause = err.cause if isinstance(err, ActivityError) else err
                reason = cause.message if isinstance(cause, ApplicationError) else str(err)
                self.failure = f"The audit ledger refused this case's entries: {reason}"[:500]
                workflow.metric_meter().create_counter(
                    LEDGER_FAILURES, "Ledger entries a case could not store"
                ).add(1, {"case_type": batch[0].case_type})
                workflow.logger.error("Ledger refused the case's entries: %s", reason)
                return
            del self.unsent[: len(batch)]
            self.writing = False
