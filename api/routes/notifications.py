from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from activities.staff import inbox
from api.audit import StoredTime
from api.deps import CurrentUser, EngineDep
from api.errors import responses

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], responses=responses(401))


class Notice(BaseModel):
    case_id: str
    kind: str
    message: str
    due_at: StoredTime | None
    created_at: StoredTime


@router.get("", response_model=list[Notice])
def my_notifications(actor: CurrentUser, engine: EngineDep) -> list[Notice]:
    """Reminders and escalations for you: addressed to you, or to your role in your team."""
    records = inbox(engine, user_id=actor.user_id, team=actor.team, role=actor.role.value)
    return [Notice.model_validate(record, from_attributes=True) for record in records]
