"""The patient portal's outbox, in the app database: the channel every patient has."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from activities.messaging.tables import PortalMessage
from workflows.care.messaging import OutboundMessage


def post(engine: Engine, message: OutboundMessage) -> str:
    """Put the message in the patient's portal outbox once per attempt; returns the row's id."""
    with Session(engine) as session:
        found = session.exec(
            select(PortalMessage).where(PortalMessage.attempt_id == message.attempt_id)
        ).first()
        if found:
            return str(found.id)
        row = PortalMessage(
            attempt_id=message.attempt_id,
            case_id=message.case_id,
            patient=message.patient,
            subject=message.subject,
            body=message.body,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # the same attempt, stored meanwhile
            session.rollback()
            return post(engine, message)
        return str(row.id)


def outbox(engine: Engine, patient: str, limit: int = 50) -> list[PortalMessage]:
    """What the portal shows a patient, newest first."""
    with Session(engine) as session:
        query = select(PortalMessage).where(PortalMessage.patient == patient)
        return list(session.exec(query.order_by(PortalMessage.created_at.desc()).limit(limit)))
