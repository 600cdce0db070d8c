"""Reading and writing the messaging tables: attempts, consent, SMS conversations, inbound
messages. Used by the sending activities and by the providers' webhooks alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from activities.messaging.tables import (
    ConsentRecord,
    ConversationRecord,
    InboundRecord,
    OutboundRecord,
)
from workflows.care.messaging import FINAL, DeliveryStatus, Medium, OutboundMessage

# Where a delivery status stands: one never moves a message back (callbacks can arrive out of
# order), and a final one is never replaced.
RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.UNDELIVERED: 2,
    DeliveryStatus.FAILED: 2,
}


def now() -> datetime:
    return datetime.now(UTC)


# -- attempts ---------------------------------------------------------------------------------


def attempt(engine: Engine, attempt_id: str) -> OutboundRecord | None:
    with Session(engine) as session:
        return session.get(OutboundRecord, attempt_id)


def claim(engine: Engine, message: OutboundMessage, **fields: object) -> OutboundRecord | None:
    """Store the attempt before anything is sent. None when it is already stored (a retry, or
    the same attempt running twice): the caller answers from the stored row instead."""
    row = OutboundRecord(
        attempt_id=message.attempt_id,
        case_id=message.case_id,
        patient=message.patient,
        channel=message.channel.value,
        kind=message.kind,
        subject=message.subject,
        body=message.body,
        **fields,
    )
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            return None
        session.refresh(row)
        return row


def settle(engine: Engine, attempt_id: str, **fields: object) -> OutboundRecord:
    with Session(engine) as session:
        row = session.get_one(OutboundRecord, attempt_id)
        for name, value in fields.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def unclaim(engine: Engine, attempt_id: str) -> None:
    """Forget an attempt the provider surely did not take, so that a retry sends it."""
    with Session(engine) as session:
        row = session.get(OutboundRecord, attempt_id)
        if row is not None and row.status == "sending":
            session.delete(row)
            session.commit()


def case_messages(engine: Engine, case_id: str) -> list[OutboundRecord]:
    with Session(engine) as session:
        query = select(OutboundRecord).where(OutboundRecord.case_id == case_id)
        return list(session.exec(query.order_by(col(OutboundRecord.created_at))))


@dataclass(frozen=True)
class Delivery:
    row: OutboundRecord
    previous: str | None  # the delivery status before this one
    changed: bool
    newly_final: bool  # the first final status: the case is told


def record_delivery(
    engine: Engine, provider_id: str, status: DeliveryStatus, error_code: str | None
) -> Delivery | None:
    """Apply a provider's status to its message, only forward; None for an unknown message."""
    with Session(engine) as session:
        row = session.exec(
            select(OutboundRecord).where(OutboundRecord.provider_id == provider_id)
        ).first()
        if row is None:
            return None
        previous = row.delivery
        lower = [s.value for s, rank in RANK.items() if rank < RANK[status]]
        # A conditional update: of two copies of one callback arriving together, one wins.
        done = session.exec(  # type: ignore[call-overload]
            update(OutboundRecord)
            .where(col(OutboundRecord.attempt_id) == row.attempt_id)
            .where(
                or_(col(OutboundRecord.delivery).is_(None), col(OutboundRecord.delivery).in_(lower))
            )
            .values(
                delivery=status.value, error_code=error_code or row.error_code, delivery_at=now()
            )
        )
        session.commit()
        changed = done.rowcount == 1
        session.refresh(row)
        return Delivery(row, previous, changed, changed and status in FINAL)


def undo_delivery(engine: Engine, delivery: Delivery) -> None:
    """Put a message's delivery back as it was (its case could not be told: the provider will
    tell us again)."""
    settle(engine, delivery.row.attempt_id, delivery=delivery.previous)


# -- consent ----------------------------------------------------------------------------------


def opted_out(engine: Engine, address_hash: str, channel: Medium) -> bool:
    with Session(engine) as session:
        found = session.get(ConsentRecord, (address_hash, channel.value))
        return bool(found and found.opted_out)


def set_consent(
    engine: Engine, address_hash: str, channel: Medium, *, opted_out: bool, keyword: str | None
) -> None:
    with Session(engine) as session:
        session.merge(
            ConsentRecord(
                address_hash=address_hash,
                channel=channel.value,
                opted_out=opted_out,
                keyword=keyword,
                at=now(),
            )
        )
        session.commit()


# -- SMS conversations ------------------------------------------------------------------------


def hold_sender(engine: Engine, address_hash: str, case_id: str, numbers: list[str]) -> str | None:
    """The number this case talks to this address from: the one it already holds, else one no
    other open case holds for the address. None when every number is taken."""
    for _ in range(3):  # another case may take the same number meanwhile: choose again
        with Session(engine) as session:
            open_ = session.exec(
                select(ConversationRecord).where(
                    ConversationRecord.address_hash == address_hash,
                    col(ConversationRecord.released_at).is_(None),
                )
            ).all()
            for held in open_:
                if held.case_id == case_id and held.sender in numbers:
                    return held.sender
            taken = {held.sender for held in open_}
            free = next((number for number in numbers if number not in taken), None)
            if free is None:
                return None
            session.add(ConversationRecord(address_hash=address_hash, sender=free, case_id=case_id))
            try:
                session.commit()
            except IntegrityError:
                continue
            return free
    return None


def release(engine: Engine, case_id: str) -> int:
    """The case closed: its numbers are free for the patient's other cases."""
    with Session(engine) as session:
        done = session.exec(  # type: ignore[call-overload]
            update(ConversationRecord)
            .where(col(ConversationRecord.case_id) == case_id)
            .where(col(ConversationRecord.released_at).is_(None))
            .values(released_at=now())
        )
        session.commit()
        return done.rowcount


def answered(engine: Engine, address_hash: str, sender: str) -> OutboundRecord | None:
    """The message a text from this address to our number answers: the newest sent by the case
    that holds the conversation. None when no open case talks with the address from there."""
    with Session(engine) as session:
        held = session.exec(
            select(ConversationRecord).where(
                ConversationRecord.address_hash == address_hash,
                ConversationRecord.sender == sender,
                col(ConversationRecord.released_at).is_(None),
            )
        ).first()
        if held is None:
            return None
        return session.exec(
            select(OutboundRecord)
            .where(
                OutboundRecord.case_id == held.case_id,
                OutboundRecord.address_hash == address_hash,
                OutboundRecord.sender == sender,
            )
            .order_by(col(OutboundRecord.created_at).desc())
        ).first()


# -- inbound ----------------------------------------------------------------------------------


def claim_inbound(engine: Engine, row: InboundRecord) -> bool:
    """Record an inbound message by the provider's id; False when it was already recorded."""
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            return False
        return True


def forget_inbound(engine: Engine, provider_id: str) -> None:
    with Session(engine) as session:
        row = session.get(InboundRecord, provider_id)
        if row is not None:
            session.delete(row)
            session.commit()
