"""Messaging tables in the app database. Addresses (phone numbers, emails) are never stored: only
their keyed hashes (addresses.py), enough to match a patient's reply or opt-out to them.

PHI-bearing columns: `outbound_message.body` and `.subject` (what the patient was sent, for the
case view) and `portal_outbox.subject` and `.body`. Every other column is free of PHI.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, text
from sqlmodel import Field, SQLModel


def _utc() -> datetime:
    return datetime.now(UTC)


def _at(index: bool = False, nullable: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class OutboundRecord(SQLModel, table=True):
    """One attempt to reach a patient (an `OutboundMessage`), stored before it is sent so that a
    retried activity finds it and never sends twice."""

    __tablename__ = "outbound_message"

    attempt_id: str = Field(primary_key=True, max_length=200)
    case_id: str = Field(index=True)
    patient: str  # "Patient/<id>"
    channel: str  # a Medium
    kind: str  # the template
    # sending: claimed, outcome not known yet; then a SendStatus.
    status: str = "sending"
    provider_id: str | None = Field(default=None, unique=True)
    sender: str | None = None  # SMS: our number that sent it (not PHI: the clinic's own)
    address_hash: str | None = Field(default=None, index=True, max_length=64)
    delivery: str | None = None  # the provider's latest DeliveryStatus
    error_code: str | None = None
    segments: int = 0
    subject: str | None = None
    body: str
    created_at: datetime = Field(default_factory=_utc, sa_column=_at(index=True))
    sent_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    delivery_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class ConsentRecord(SQLModel, table=True):
    """A patient's word on a channel (STOP / START), by address: it holds for every case."""

    __tablename__ = "messaging_consent"

    address_hash: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True)
    opted_out: bool
    keyword: str | None = None  # the word the patient sent, or the provider's error code
    at: datetime = Field(default_factory=_utc, sa_column=_at())


class ConversationRecord(SQLModel, table=True):
    """One of our SMS numbers talking with one patient address for one case, until the case
    closes (released_at): a reply to that number from that address belongs to that case."""

    __tablename__ = "sms_conversation"
    __table_args__ = (
        # One open conversation per (address, number): two cases never share one.
        Index(
            "uq_sms_conversation_open",
            "address_hash",
            "sender",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    address_hash: str = Field(max_length=64)
    sender: str
    case_id: str = Field(index=True)
    opened_at: datetime = Field(default_factory=_utc, sa_column=_at())
    released_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class InboundRecord(SQLModel, table=True):
    """A patient's message, by the provider's id: the same one delivered twice is told once."""

    __tablename__ = "inbound_message"

    provider_id: str = Field(primary_key=True, max_length=64)
    channel: str
    attempt_id: str | None = None  # the outbound message it answers, when one was found
    case_id: str | None = Field(default=None, index=True)
    kind: str  # a ReplyKind
    received_at: datetime = Field(default_factory=_utc, sa_column=_at())


class PortalMessage(SQLModel, table=True):
    """The patient portal's outbox: the channel that is always there."""

    __tablename__ = "portal_outbox"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    attempt_id: str = Field(unique=True, max_length=200)
    case_id: str = Field(index=True)
    patient: str = Field(index=True)
    subject: str | None = None
    body: str
    created_at: datetime = Field(default_factory=_utc, sa_column=_at())
    read_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
