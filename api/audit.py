"""Reading the ledger for auditors: a case's trail, its chain check, searches and the access log."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from activities.ledger.tables import AccessRow, LedgerRow, as_stored
from workflows.care.chain import GENESIS, link
from workflows.care.models import Actor, LedgerEntry, TimelineEvent


class AuditEvent(LedgerEntry):
    recorded_at: datetime


def utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_event(row: LedgerRow) -> AuditEvent:
    event = AuditEvent.model_validate(row, from_attributes=True)
    event.at, event.recorded_at = utc(event.at), utc(event.recorded_at)
    return event


def case_trail(engine: Engine, case_id: str) -> list[AuditEvent]:
    with Session(engine) as session:
        rows = session.exec(
            select(LedgerRow).where(LedgerRow.case_id == case_id).order_by(col(LedgerRow.seq))
        ).all()
        return [to_event(row) for row in rows]


class ChainReport(BaseModel):
    case_id: str
    intact: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None
    temporal_checked: bool = False
    pending: int = 0  # the case's newest events, accepted but not yet in the ledger


def verify_chain(
    case_id: str,
    trail: list[AuditEvent],
    timeline: list[TimelineEvent] | None,
    pending: int = 0,
) -> ChainReport:
    """Recompute every hash; with the Temporal timeline at hand, cross-check each entry with it.

    `pending`: the timeline's newest events that the case had not yet written to the ledger when
    it was asked (read the timeline first, then the ledger, so nothing written between counts).
    The report's `pending` is what the ledger read still lacks of the timeline."""
    lacking = max(0, len(timeline) - len(trail)) if timeline is not None else 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(
            case_id=case_id,
            intact=False,
            entries=len(trail),
            first_broken_seq=seq,
            problem=problem,
            temporal_checked=timeline is not None,
            pending=lacking,
        )

    previous = GENESIS
    for expected_seq, event in enumerate(trail, start=1):
        if event.seq != expected_seq:
            return broken(expected_seq, f"entry {expected_seq} is missing")
        if event.prev_hash != previous:
            return broken(event.seq, "does not link to the entry before it")
        entry = LedgerEntry.model_validate(event.model_dump(exclude={"recorded_at"}))
        if link(previous, entry.content()) != event.hash:
            return broken(event.seq, "its content does not match its hash (edited)")
        previous = event.hash
    if timeline is not None:
        if lacking > pending:
            return broken(
                len(trail) + 1, f"Temporal has {len(timeline)} events, the ledger {len(trail)}"
            )
        for event, step in zip(trail, timeline, strict=False):
            if (event.kind, event.actor, event.at, event.summary) != (
                step.kind.value,
                step.actor,
                step.at,
                step.summary,
            ):
                return broken(event.seq, "differs from the workflow's own history")
    return ChainReport(
        case_id=case_id,
        intact=True,
        entries=len(trail),
        temporal_checked=timeline is not None,
        pending=lacking,
    )


class EventSearch(BaseModel):
    kind: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    case_type: str | None = None
    team: str | None = None
    location: str | None = None


def search_events(
    engine: Engine, search: EventSearch, *, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    query = select(LedgerRow)
    filters = {
        LedgerRow.kind: search.kind,
        LedgerRow.actor: search.actor,
        LedgerRow.case_type: search.case_type,
        LedgerRow.team: search.team,
        LedgerRow.location: search.location,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if search.since:
        query = query.where(col(LedgerRow.at) >= as_stored(search.since))
    if search.until:
        query = query.where(col(LedgerRow.at) < as_stored(search.until))
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(
            query.order_by(col(LedgerRow.at), col(LedgerRow.case_id), col(LedgerRow.seq))
            .offset(offset)
            .limit(limit)
        ).all()
        return [to_event(row) for row in rows], total


CSV_COLUMNS = [
    "case_id",
    "seq",
    "at",
    "kind",
    "actor",
    "role",
    "summary",
    "stage_before",
    "stage_after",
    "case_type",
    "team",
    "location",
    "evidence",
    "hash",
]


def events_csv(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = event.model_dump(mode="json")
        row["evidence"] = " ".join(e["reference"] for e in row["evidence"])
        writer.writerow([row[column] for column in CSV_COLUMNS])
    return out.getvalue()


def record_access(
    engine: Engine, actor: Actor, case_id: str, view: str, request_id: str | None
) -> None:
    with Session(engine) as session:
        session.add(
            AccessRow(
                user_id=actor.user_id,
                role=actor.role.value,
                case_id=case_id,
                view=view,
                request_id=request_id,
            )
        )
        session.commit()


class Access(BaseModel):
    at: datetime
    user_id: str
    role: str
    case_id: str
    view: str
    request_id: str | None


def access_log(
    engine: Engine, *, case_id: str | None, user_id: str | None, limit: int
) -> list[Access]:
    query = select(AccessRow)
    if case_id:
        query = query.where(AccessRow.case_id == case_id)
    if user_id:
        query = query.where(AccessRow.user_id == user_id)
    with Session(engine) as session:
        rows = session.exec(query.order_by(col(AccessRow.at).desc()).limit(limit)).all()
        return [Access.model_validate(row, from_attributes=True) for row in rows]
