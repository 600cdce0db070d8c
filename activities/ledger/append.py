"""Append ledger entries: idempotent on (case, seq), so retries and replays never duplicate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger.anchor import Anchor
from activities.ledger.tables import CaseSummary, LedgerHead, LedgerRow, iso_week
from workflows.care.models import EventKind, LedgerBatch, LedgerEntry
from workflows.triggers.models import ALERT_CASE_TYPE

log = structlog.get_logger(__name__)
REWORK_KINDS = {EventKind.NO_SHOW, EventKind.REWORK}


class LedgerActivities:
    def __init__(self, engine: Engine, anchor: Anchor | None = None) -> None:
        self.engine = engine
        self.anchor = anchor or Anchor()

    @activity.defn(name="append_ledger")
    async def append(self, batch: LedgerBatch) -> int:
        """Store the entries not yet stored; answers how many were new."""
        return await asyncio.to_thread(append_entries, self.engine, batch.entries, self.anchor)


def append_entries(engine: Engine, entries: list[LedgerEntry], anchor: Anchor | None = None) -> int:
    """Store each entry once, keep the case summaries, and sign each case's new head, all in one
    transaction. `engine` may be an open connection: the append then joins its transaction."""
    anchor = anchor or Anchor()
    added = 0
    heads: dict[str, LedgerEntry] = {}
    with Session(engine) as session:
        for entry in entries:
            stored = session.exec(
                select(LedgerRow.hash).where(
                    LedgerRow.case_id == entry.case_id, LedgerRow.seq == entry.seq
                )
            ).first()
            if stored is not None:
                if stored != entry.hash:
                    raise ApplicationError(
                        f"Ledger entry {entry.seq} of case {entry.case_id} is already stored "
                        "with another hash",
                        type="LedgerConflict",
                        non_retryable=True,
                    )
                continue
            session.add(_row(entry, anchor))
            if entry.case_type != ALERT_CASE_TYPE:
                _summarize(session, entry)
            added += 1
            heads[entry.case_id] = entry
        for entry in heads.values():
            _sign_head(session, entry, anchor)
        session.commit()
    if added:
        log.info("ledger_appended", case_id=entries[0].case_id, entries=added)
    return added


def _sign_head(session: Session, entry: LedgerEntry, anchor: Anchor) -> None:
    head = session.get(LedgerHead, entry.case_id)
    if head is not None and head.last_seq >= entry.seq:
        return
    head = head or LedgerHead(
        case_id=entry.case_id, last_seq=0, head_hash="", key_id="", signature=""
    )
    head.last_seq, head.head_hash = entry.seq, entry.hash
    head.key_id = anchor.key_id
    head.signature = anchor.sign(entry.case_id, entry.seq, entry.hash)
    head.signed_at = datetime.now(UTC)
    session.add(head)


def _row(entry: LedgerEntry, anchor: Anchor) -> LedgerRow:
    data = entry.model_dump(mode="json")
    seal = anchor.seal(data)
    data["at"] = entry.at
    return LedgerRow(**data, seal=seal)


def _summarize(session: Session, entry: LedgerEntry) -> None:
    summary = session.get(CaseSummary, entry.case_id)
    if summary is None:
        summary = CaseSummary(
            case_id=entry.case_id,
            case_type=entry.case_type,
            team=entry.team,
            location=entry.location,
            priority=entry.priority,
            opened_at=entry.at,
            opened_week=iso_week(entry.at),
        )
    if entry.kind == EventKind.ASSIGNED and summary.first_assigned_at is None:
        summary.first_assigned_at = entry.at
        summary.hours_unowned = _hours_since_opened(summary, entry)
    if entry.stage_after == "scheduled" and summary.first_scheduled_at is None:
        summary.first_scheduled_at = entry.at
        summary.hours_to_schedule = _hours_since_opened(summary, entry)
    if entry.kind == EventKind.ESCALATED:
        summary.escalations += 1
    if entry.kind in REWORK_KINDS:
        summary.rework_loops += 1
    if entry.kind == EventKind.EXCEPTION_RAISED:
        summary.exceptions += 1
    if entry.evidence and entry.kind in (EventKind.COMPLETED, EventKind.VERIFIED):
        summary.evidence_on_file = True
    _summarize_payer(summary, entry)
    _summarize_outreach(summary, entry)
    if entry.case_closed:
        summary.closed_at = entry.at
        summary.closed_stage = entry.stage_after
        summary.completed = entry.kind == EventKind.COMPLETED
        if summary.completed:
            summary.hours_to_complete = _hours_since_opened(summary, entry)
    summary.last_seq = max(summary.last_seq, entry.seq)
    session.add(summary)


def _summarize_payer(summary: CaseSummary, entry: LedgerEntry) -> None:
    """What prior-authorization metrics need, from SUBMITTED, DECIDED and LAPSED events."""
    if entry.kind == EventKind.SUBMITTED:
        summary.submissions += 1
        if summary.first_submitted_at is None:
            summary.first_submitted_at = entry.at
    elif entry.kind == EventKind.DECIDED:
        decision = entry.details.get("decision")
        if decision == "pended":
            summary.pended_at = summary.pended_at or entry.at
            return
        summary.pended_at = None
        if decision not in ("approved", "denied"):
            return
        if summary.hours_to_decision is None and summary.first_submitted_at is not None:
            summary.hours_to_decision = _hours_between(summary.first_submitted_at, entry.at)
        if summary.first_pass_approved is None:
            summary.first_pass_approved = decision == "approved"
        if decision == "denied" and summary.denial_reason is None:
            summary.denial_reason = (entry.details.get("reason") or "unspecified")[:200]
    elif entry.kind == EventKind.LAPSED:
        summary.lapsed_unused += 1


MESSAGED = ("sms", "email", "portal")
RECEIPTED = {"sms"}  # channels whose provider reports delivery
PATIENT_REPLIES = {"confirm", "call_back", "other"}  # not the STOP/START/HELP keywords


def _summarize_outreach(summary: CaseSummary, entry: LedgerEntry) -> None:
    """What outreach metrics need, from the cadence's OUTREACH, DELIVERY, REPLY and CONSENT
    events (an OUTREACH a person recorded by hand has no `attempt` and is not a message)."""
    details, channel = entry.details, entry.details.get("channel", "")
    sent = details.get("status") == "sent" and "attempt" in details
    if entry.kind == EventKind.OUTREACH and sent and channel in MESSAGED:
        _bump(summary, f"{channel}_sent")
        if channel not in RECEIPTED:
            _bump(summary, f"{channel}_reached")
        if summary.first_message_at is None:
            summary.first_message_at = entry.at
    elif entry.kind == EventKind.DELIVERY and channel in MESSAGED:
        reached = details.get("status") == "delivered"
        if reached and channel in RECEIPTED:
            _bump(summary, f"{channel}_reached")
        elif not reached and channel not in RECEIPTED:
            _bump(summary, f"{channel}_reached", -1)  # it bounced after all
    elif entry.kind == EventKind.REPLY and details.get("reply") in PATIENT_REPLIES:
        summary.replies += 1
    elif entry.kind == EventKind.CONSENT and details.get("consent") == "opted_out":
        summary.opted_out = True
    if (
        entry.stage_after == "scheduled"
        and summary.first_message_at is not None
        and summary.hours_message_to_schedule is None
    ):
        summary.hours_message_to_schedule = _hours_between(summary.first_message_at, entry.at)


def _bump(summary: CaseSummary, column: str, by: int = 1) -> None:
    setattr(summary, column, getattr(summary, column) + by)


def _hours_between(start: datetime, end: datetime) -> float:
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    return (end - start).total_seconds() / 3600


def _hours_since_opened(summary: CaseSummary, entry: LedgerEntry) -> float:
    opened = (
        summary.opened_at if summary.opened_at.tzinfo else summary.opened_at.replace(tzinfo=UTC)
    )
    return (entry.at - opened).total_seconds() / 3600
