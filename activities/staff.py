"""Staff notices: reminders and escalations delivered to a person's or a team role's inbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select
from temporalio import activity

from workflows.care.models import StaffNotice

log = structlog.get_logger(__name__)


class StaffNoticeRecord(SQLModel, table=True):
    __tablename__ = "staff_notice"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # One notice per workflow activity execution: a retried delivery is not a second notice.
    delivery_key: str = Field(unique=True)
    case_id: str = Field(index=True)
    kind: str
    team: str = Field(index=True)
    role: str
    user_id: str | None = Field(default=None, index=True)
    message: str
    due_at: datetime | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class StaffActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name="notify_staff")
    async def notify(self, notice: StaffNotice) -> None:
        info = activity.info()
        key = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        await asyncio.to_thread(self._store, key, notice)
        log.info(
            "staff_notified",
            case_id=notice.case_id,
            kind=notice.kind,
            team=notice.team,
            role=notice.role,
        )

    def _store(self, key: str, notice: StaffNotice) -> None:
        with Session(self.engine) as session:
            if session.exec(
                select(StaffNoticeRecord).where(StaffNoticeRecord.delivery_key == key)
            ).first():
                return
            session.add(StaffNoticeRecord(delivery_key=key, **notice.model_dump(mode="python")))
            session.commit()


def inbox(
    engine: Engine, *, user_id: str, team: str | None, role: str, limit: int = 50
) -> list[StaffNoticeRecord]:
    """Notices for one person: addressed to them, or to their role in their team."""
    with Session(engine) as session:
        query = select(StaffNoticeRecord).where(
            (StaffNoticeRecord.user_id == user_id)
            | (
                (StaffNoticeRecord.team == team)
                & (StaffNoticeRecord.role == role)
                & (StaffNoticeRecord.user_id.is_(None))
            )
        )  # type: ignore[union-attr]
        return list(session.exec(query.order_by(StaffNoticeRecord.created_at.desc()).limit(limit)))
