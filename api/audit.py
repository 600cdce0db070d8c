"""Reading the ledger for auditors: a case's trail, its chain check, searches and the access log."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from activities.ledger.anchor import Anchor
from activities.ledger.tables import AccessRow, LedgerHead, LedgerRow, as_stored
from api.deps import Instant
from workflows.care.chain import GENESIS, link
from workflows.care.models import Actor, CaseDetail, LedgerEntry, TimelineEvent


class AuditEvent(LedgerEntry):
    recorded_at: datetime
    seal: str | None = None


def utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# A moment read back from the app database, answered with its zone (UTC).
StoredTime = Annotated[datetime, AfterValidator(utc)]


def to_event(row: LedgerRow) -> AuditEvent:
    event = AuditEvent.model_validate(row, from_attributes=True)
    event.at, event.recorded_at = utc(event.at), utc(event.recorded_at)
    return event


def case_trail(engine: Engine, case_id: str, *, before_seq: int | None = None) -> list[AuditEvent]:
    query = select(LedgerRow).where(LedgerRow.case_id == case_id)
    if before_seq is not None:
        query = query.where(col(LedgerRow.seq) < before_seq)
    with Session(engine) as session:
        rows = session.exec(query.order_by(col(LedgerRow.seq))).all()
        return [to_event(row) for row in rows]


def earlier_events(engine: Engine, case: CaseDetail) -> list[TimelineEvent]:
    """The case's events older than those its workflow keeps, from the ledger."""
    if not case.timeline or case.timeline[0].seq <= 1:
        return []
    trail = case_trail(engine, case.case_id, before_seq=case.timeline[0].seq)
    return [TimelineEvent.model_validate(event.model_dump()) for event in trail]


class ChainReport(BaseModel):
    case_id: str
    intact: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None
    temporal_checked: bool = False
    anchored: bool = False  # the newest entry matches the case's signed head
    pending: int = 0  # the case's newest events, accepted but not yet in the ledger


def case_head(engine: Engine, case_id: str) -> LedgerHead | None:
    with Session(engine) as session:
        return session.get(LedgerHead, case_id)


def check_case(
    engine: Engine, case_id: str, case: CaseDetail | None, anchor: Anchor
) -> ChainReport:
    """Read the case's ledger and signed head, and verify them (see `verify_chain`). The two are
    read one after the other, so an append landing in between can make them disagree: that is
    read again before it is reported."""
    for _ in range(3):
        trail, head = case_trail(engine, case_id), case_head(engine, case_id)
        report = verify_chain(case_id, trail, case, head=head, anchor=anchor)
        if report.intact or not (head and head.last_seq != len(trail)):
            return report
    return report


def verify_chain(
    case_id: str,
    trail: list[AuditEvent],
    case: CaseDetail | None = None,
    *,
    head: LedgerHead | None = None,
    anchor: Anchor | None = None,
) -> ChainReport:
    """Recompute every hash; check the newest entry against the case's signed head (with
    `anchor`); and while Temporal still holds the case (`case`, read before the trail), cross-check
    each entry with the case's own timeline.

    The case's newest events may not be in the ledger yet (`case.ledger_pending`): the report's
    `pending` is what the ledger read still lacks of the case's events."""
    lacking = max(0, case.events - len(trail)) if case is not None else 0
    anchored = False

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(
            case_id=case_id,
            intact=False,
            entries=len(trail),
            first_broken_seq=seq,
            problem=problem,
            temporal_checked=case is not None,
            anchored=anchored,
            pending=lacking,
        )

    previous = GENESIS
    for expected_seq, event in enumerate(trail, start=1):
        if event.seq != expected_seq:
            return broken(expected_seq, f"entry {expected_seq} is missing")
        if event.prev_hash != previous:
            return broken(event.seq, "does not link to the entry before it")
        entry = LedgerEntry.model_validate(event.model_dump(exclude={"recorded_at", "seal"}))
        if link(previous, entry.content()) != event.hash:
            return broken(event.seq, "its content does not match its hash (edited)")
        if anchor is not None and event.seal is not None:
            if anchor.seal(entry.model_dump(mode="json")) != event.seal:
                return broken(event.seq, "its words were edited after it was stored (seal)")
        previous = event.hash
    if anchor is not None and trail:
        if head is None:
            return broken(1, "the case has no signed head: its chain cannot be anchored")
        if not anchor.holds(case_id, head.last_seq, head.head_hash, head.signature):
            return broken(head.last_seq, "the signed head does not hold (forged, or another key)")
        if len(trail) < head.last_seq:
            return broken(
                len(trail) + 1,
                f"entries {len(trail) + 1} to {head.last_seq} are missing (the tail was cut)",
            )
        if trail[head.last_seq - 1].hash != head.head_hash:
            return broken(
                head.last_seq, "the chain was re-hashed: it does not end at the signed head"
            )
        if len(trail) > head.last_seq:
            return broken(
                head.last_seq + 1,
                f"entries after {head.last_seq} were added after the signed head",
            )
        anchored = True
    if case is not None:
        if lacking > case.ledger_pending:
            return broken(
                len(trail) + 1, f"Temporal has {case.events} events, the ledger {len(trail)}"
            )
        if len(trail) > case.events:
            return broken(case.events + 1, "the ledger has entries the case never recorded")
        for step in case.timeline:
            if step.seq > len(trail):
                break
            event = trail[step.seq - 1]
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
        temporal_checked=case is not None,
        anchored=anchored,
        pending=lacking,
    )


class EventSearch(BaseModel):
    kind: str | None = None
    actor: str | None = None
    since: Instant | None = None
    until: Instant | None = None
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
    engine: Engine, actor: Actor, case_id: str | list[str], view: str, request_id: str | None
) -> None:
    """One access-log row per case read (`case_id` may list several read at once)."""
    with Session(engine) as session:
        for case in [case_id] if isinstance(case_id, str) else case_id:
            session.add(
                AccessRow(
                    user_id=actor.user_id,
                    role=actor.role.value,
                    case_id=case,
                    view=view,
                    request_id=request_id,
                )
            )
        session.commit()


class Access(BaseModel):
    at: StoredTime
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
