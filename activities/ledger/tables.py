"""Ledger tables: the append-only entries, and a per-case summary derived from them for metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc() -> datetime:
    return datetime.now(UTC)


class LedgerRow(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_ledger_case_seq"),
        Index("ix_ledger_kind_at", "kind", "at"),
        Index("ix_ledger_team_at", "team", "at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: str = Field(index=True)
    seq: int
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    kind: str
    actor: str = Field(index=True)
    role: str
    summary: str
    stage_before: str | None = None
    stage_after: str | None = None
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    evidence: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    case_type: str = Field(index=True)
    team: str
    location: str | None = Field(default=None, index=True)
    priority: str | None = None
    pathway: str
    pathway_version: str
    case_closed: bool = False
    prev_hash: str
    hash: str
    hash_scheme: int = 1
    seal: str | None = None  # see activities/ledger/anchor.py; none on entries stored before
    recorded_at: datetime = Field(
        default_factory=_utc, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class LedgerHead(SQLModel, table=True):
    """A case's newest entry, signed with the ledger's anchor key (which the database does not
    hold): a truncated tail, an appended entry or a re-hashed chain no longer matches it."""

    __tablename__ = "ledger_head"

    case_id: str = Field(primary_key=True)
    last_seq: int
    head_hash: str
    key_id: str
    signature: str
    signed_at: datetime = Field(
        default_factory=_utc, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class CaseSummary(SQLModel, table=True):
    """One row per case, kept current as entries are appended; metrics aggregate over it."""

    __tablename__ = "case_summary"
    __table_args__ = (Index("ix_summary_type_team_opened", "case_type", "team", "opened_at"),)

    case_id: str = Field(primary_key=True)
    case_type: str
    team: str = Field(index=True)
    location: str | None = Field(default=None, index=True)
    priority: str | None = None
    opened_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    # The ISO week of opening (UTC), e.g. "2026-W48": metrics group by it without date functions.
    opened_week: str | None = Field(default=None, max_length=10)
    first_assigned_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    first_scheduled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_stage: str | None = None
    completed: bool = False
    escalations: int = 0
    rework_loops: int = 0
    exceptions: int = 0
    evidence_on_file: bool = False
    last_seq: int = 0
    # Durations from opening, kept as numbers so metrics rank them without date arithmetic.
    hours_unowned: float | None = None
    hours_to_schedule: float | None = None
    hours_to_complete: float | None = None
    # Cases that ask a payer (prior authorization): requests sent, the first decision, whether
    # the first request was approved, a pend still waiting, the first denial's reason, and
    # authorizations that ran out unused.
    submissions: int = 0
    first_submitted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    hours_to_decision: float | None = None
    first_pass_approved: bool | None = None
    pended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    denial_reason: str | None = Field(default=None, max_length=200)
    lapsed_unused: int = 0
    # Cases that message the patient: messages sent and reached per channel (SMS reached = the
    # carrier reported it delivered; email and portal have no receipt, so one sent counts as
    # reached unless it bounced), replies, an opt-out, and the first message's time.
    sms_sent: int = 0
    sms_reached: int = 0
    email_sent: int = 0
    email_reached: int = 0
    portal_sent: int = 0
    portal_reached: int = 0
    replies: int = 0
    opted_out: bool = False
    first_message_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    hours_message_to_schedule: float | None = None


class AccessRow(SQLModel, table=True):
    """Who looked at which case, how and when: the accounting of disclosures HIPAA asks for."""

    __tablename__ = "access_log"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(
        default_factory=_utc, sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    user_id: str = Field(index=True)
    role: str
    case_id: str = Field(index=True)
    view: str  # detail, history, audit, verify, proof
    request_id: str | None = None


class IdempotentRequest(SQLModel, table=True):
    """An action sent with an Idempotency-Key, and the answer it got: a retry of the same request
    is answered from here instead of acting twice. No status yet: the first is still running."""

    __tablename__ = "idempotent_request"

    user_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    case_id: str
    action: str
    body_hash: str = Field(max_length=64)  # SHA-256 of the request's body, hex
    status: int | None = None
    answer: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(
        default_factory=_utc, sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


def as_stored(moment: datetime) -> datetime:
    """A bound for queries: stored timestamps are UTC, and SQLite compares them without offset."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def iso_week(moment: datetime) -> str:
    """The ISO week a moment falls in, as metrics name weeks: "2026-W48"."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"
