from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from api import audit, cases, idempotency
from api import work_queue as queues
from api.actions import action_bodies, actions_described
from api.deps import Caseworker, CurrentUser, EngineDep, SettingsDep, TemporalDep
from api.opening import open_from
from api.routes.fhir import FhirDep
from workflows import pathways
from workflows.care.models import Actor, CaseDetail

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])
CaseId = Annotated[str, Path(pattern=r"^[a-z]+-[A-Za-z0-9\-.]{1,64}$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=idempotency.KEY_PATTERN,
        description="Your own name for this request (1-200 of A-Z a-z 0-9 _ - . :): sent again "
        "within 24 hours with the same case, action and body, it acts once and answers as the "
        "first time did (with `Idempotent-Replayed: true`); with another request, 422. A 5xx is "
        "not kept: send it again; the case still takes a keyed request once, even when its first "
        "answer was lost. Each user's keys are their own.",
    ),
]


class OpenedCases(BaseModel):
    cases: list[CaseDetail]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OpenedCases,
    responses={
        200: {"description": "The resource's cases were already open: those cases"},
        403: {"description": "An auditor, or a resource routed to another team than yours"},
        422: {"description": "Not a valid FHIR R4 resource, or one that opens no case"},
    },
)
async def open_cases(
    response: Response,
    client: TemporalDep,
    settings: SettingsDep,
    actor: Caseworker,
    fhir: FhirDep,
    resource: dict[str, Any] = Body(
        description="A FHIR R4 resource that opens cases, e.g. a ServiceRequest (intent order, "
        "status active): a referral, and a prior authorization when the order needs one"
    ),
    pathway: Annotated[
        str | None, Query(description="Open only this pathway's case (its case type)")
    ] = None,
) -> OpenedCases:
    """Open every case a FHIR resource opens, of any pathway (`GET /api/v1/pathways` lists
    them). The same resource again answers with the same cases."""
    if pathway is not None and pathway not in pathways.BY_TYPE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["query", "pathway"], "msg": "unknown pathway", "type": "value_error"}],
        )
    opened = await open_from(client, fhir, settings, actor, resource, only=pathway)
    if not any(case.created for case in opened):
        response.status_code = status.HTTP_200_OK
    return OpenedCases(cases=opened)


@router.get("", response_model=queues.QueuePage)
async def work_queue(
    client: TemporalDep,
    actor: CurrentUser,
    team: str | None = None,
    owner: str | None = None,
    unowned: bool | None = None,
    stage: str | None = None,
    stalled: bool | None = None,
    due_before: datetime | None = None,
    case_type: str | None = None,
    priority: str | None = None,
    location: str | None = None,
    include_closed: bool = False,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: str | None = None,
) -> queues.QueuePage:
    """A work queue from Temporal visibility. Coordinators and supervisors see their team's."""
    filters = queues.QueueFilter(
        team=team,
        owner=owner,
        unowned=unowned,
        stage=stage,
        stalled=stalled,
        due_before=due_before,
        case_type=case_type,
        priority=priority,
        location=location,
        include_closed=include_closed,
    )
    return await queues.work_queue(client, actor, filters, page_size, page_token)


def log_access(engine: Engine, actor: Actor, case_id: str, view: str) -> None:
    audit.record_access(
        engine, actor, case_id, view, structlog.contextvars.get_contextvars().get("request_id")
    )


@router.get("/{case_id}", response_model=CaseDetail)
async def read_case(
    case_id: CaseId, client: TemporalDep, actor: CurrentUser, engine: EngineDep
) -> CaseDetail:
    structlog.contextvars.bind_contextvars(case_id=case_id)
    case = await cases.read_case(client, case_id, actor)
    log_access(engine, actor, case_id, "detail")
    case.timeline[:0] = audit.earlier_events(engine, case)
    return case


@router.post(
    "/{case_id}/actions/{action}",
    response_model=CaseDetail,
    openapi_extra=action_bodies(),
    description=actions_described(),
    responses={
        404: {"description": "Unknown case or action"},
        409: {"description": "The action does not fit the case's stage"},
        422: {"description": "The action's content is invalid"},
        403: {"description": "Your role or team may not act on this case"},
    },
)
async def act(
    case_id: CaseId,
    action: str,
    client: TemporalDep,
    actor: CurrentUser,
    engine: EngineDep,
    body: dict[str, Any] = Body(default_factory=dict),
    idempotency_key: IdempotencyKey = None,
) -> CaseDetail | JSONResponse:
    """Record what the care team did. Answers once the case has accepted or rejected it."""
    structlog.contextvars.bind_contextvars(case_id=case_id, action=action)
    if idempotency_key is None:
        return await cases.act(client, case_id, action, body, actor)
    request = idempotency.KeyedAction.of(actor.user_id, idempotency_key, case_id, action, body)
    try:
        earlier = idempotency.claim(engine, request)
    except idempotency.KeyReused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "This Idempotency-Key was used for another request; use a new key for this one",
        ) from None
    except idempotency.KeyInFlight:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "A request with this Idempotency-Key is in progress; send it again in a moment",
        ) from None
    if earlier is not None:
        return JSONResponse(
            earlier.body, status_code=earlier.status, headers={"Idempotent-Replayed": "true"}
        )
    try:
        case = await cases.act(client, case_id, action, body, actor, update_id=request.update_id)
    except HTTPException as err:
        if idempotency.keeps(err.status_code):
            answer = idempotency.Answer(err.status_code, {"detail": err.detail})
            idempotency.settle(engine, request, answer)
        else:
            idempotency.release(engine, request)
        raise
    except BaseException:
        idempotency.release(engine, request)
        raise
    answer = idempotency.Answer(status.HTTP_200_OK, case.model_dump(mode="json"))
    idempotency.settle(engine, request, answer)
    return JSONResponse(answer.body, status_code=answer.status)


@router.get("/{case_id}/history", response_model=list[cases.HistoryEvent])
async def case_history(
    case_id: CaseId, client: TemporalDep, actor: CurrentUser, engine: EngineDep
) -> list[cases.HistoryEvent]:
    """The case's Temporal event history, as readable events (no payloads)."""
    structlog.contextvars.bind_contextvars(case_id=case_id)
    await cases.read_case(client, case_id, actor)
    log_access(engine, actor, case_id, "history")
    return await cases.history(client, case_id)
