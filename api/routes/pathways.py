"""What each pathway is: its stages, actions (with their body schemas) and deadlines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.actions import body_schema
from api.deps import CurrentUser
from api.errors import responses
from workflows.care.models import TaskState
from workflows.pathways import PATHWAYS

router = APIRouter(prefix="/api/v1/pathways", tags=["pathways"], responses=responses(401))


class StageOut(BaseModel):
    name: str
    label: str
    closed: bool
    task: TaskState
    deadline: str | None = None


class ActionOut(BaseModel):
    name: str
    title: str
    stages: list[str] | None  # None: any open stage
    roles: list[str]
    body: dict[str, Any]  # the request body's JSON schema


class PathwayOut(BaseModel):
    case_type: str
    id_prefix: str
    title: str
    description: str
    opens_from: str
    stages: list[StageOut]
    actions: list[ActionOut]


@router.get("", response_model=list[PathwayOut])
async def list_pathways(actor: CurrentUser) -> list[PathwayOut]:
    """Every pathway Followthrough runs, as its package declares it."""
    return [
        PathwayOut(
            case_type=p.case_type,
            id_prefix=p.id_prefix,
            title=p.title,
            description=p.description,
            opens_from=p.opens_from,
            stages=[
                StageOut(
                    name=name,
                    label=stage.label,
                    closed=stage.closed,
                    task=stage.task,
                    deadline=p.deadlines.get(name),
                )
                for name, stage in p.stages.items()
            ],
            actions=[
                ActionOut(
                    name=a.name,
                    title=a.title,
                    stages=sorted(a.stages) if a.stages is not None else None,
                    roles=sorted(role.value for role in a.roles),
                    body=body_schema(a.model),
                )
                for a in p.actions
            ],
        )
        for p in PATHWAYS
    ]
