from __future__ import annotations

import json
from typing import Annotated

import structlog
from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel
from temporalio.service import RPCError

from activities.ledger.anchor import Anchor
from api import audit, cases
from api.deps import CurrentUser, EngineDep, SettingsDep, TemporalDep, require_role
from api.errors import SIGNED_IN, responses
from api.proof import proof_bundle
from api.routes.cases import CaseId
from workflows.care.models import Actor, Role

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=responses(*SIGNED_IN))
Auditor = Annotated[Actor, require_role(Role.AUDITOR, Role.ADMIN)]


def readable_trail(engine, case_id: str, actor: Actor, view: str) -> list[audit.AuditEvent]:
    """The case's ledger, for auditors and for the owning team; the read itself is logged."""
    trail = audit.case_trail(engine, case_id)
    if actor.role not in cases.SEE_EVERY_CASE and (not trail or actor.team != trail[0].team):
        raise cases.outside_team(actor, case_id)
    if not trail:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No audit trail for case {case_id}")
    audit.record_access(
        engine, actor, case_id, view, structlog.contextvars.get_contextvars().get("request_id")
    )
    return trail


# A case's ledger: its team's (or any, for auditors and admins); kept after Temporal forgets it.
LEDGER_READ = responses(403, 404, said={404: "No audit trail for the case"})
AUDITORS_ONLY = responses(403, said={403: "For auditors and admins"})


@router.get("/cases/{case_id}/audit", response_model=list[audit.AuditEvent], responses=LEDGER_READ)
def case_audit(case_id: CaseId, actor: CurrentUser, engine: EngineDep) -> list[audit.AuditEvent]:
    """The case's ledger as a timeline, oldest first. Kept after Temporal has forgotten the case."""
    return readable_trail(engine, case_id, actor, "audit")


@router.get(
    "/cases/{case_id}/audit/verify", response_model=audit.ChainReport, responses=LEDGER_READ
)
async def verify_case_chain(
    case_id: CaseId,
    actor: CurrentUser,
    engine: EngineDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> audit.ChainReport:
    """Recompute the hash chain and check it ends at the case's signed head; while Temporal
    still holds the case, cross-check with it too."""
    try:
        case = await cases.query_case(client, case_id)
    except (HTTPException, RPCError):
        case = None  # closed and past Temporal's retention: the ledger and its head stand alone
    readable_trail(engine, case_id, actor, "verify")
    return audit.check_case(engine, case_id, case, Anchor(settings.ledger_anchor_key))


@router.get(
    "/cases/{case_id}/proof",
    response_class=Response,
    responses={
        200: {
            "description": "A FHIR R4 Bundle (collection) of AuditEvent and Provenance",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        **LEDGER_READ,
    },
)
def case_proof(case_id: CaseId, actor: CurrentUser, engine: EngineDep) -> Response:
    """The case's proof as a FHIR R4 Bundle of AuditEvent and Provenance resources."""
    trail = readable_trail(engine, case_id, actor, "proof")
    return Response(json.dumps(proof_bundle(case_id, trail)), media_type="application/fhir+json")


class EventPage(BaseModel):
    items: list[audit.AuditEvent]
    total: int
    limit: int
    offset: int


MAX_OFFSET = 2**31 - 1  # beyond any ledger; the database's integers end not far above
# The ledger search's filters, read from the query string (kind, actor, since, until, ...).
SearchDep = Annotated[audit.EventSearch, Query()]


@router.get("/audit/events", response_model=EventPage, responses=AUDITORS_ONLY)
def audit_events(
    _: Auditor,
    engine: EngineDep,
    search: SearchDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> EventPage:
    """Search the ledger across cases."""
    items, total = audit.search_events(engine, search, limit=limit, offset=offset)
    return EventPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/audit/events.csv",
    response_class=Response,
    responses={
        200: {
            "description": "One row per event",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **AUDITORS_ONLY,
    },
)
def audit_events_csv(
    _: Auditor,
    engine: EngineDep,
    search: SearchDep,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """The same search as CSV, for spreadsheets and auditors' tools."""
    items, _total = audit.search_events(engine, search, limit=limit, offset=0)
    return Response(
        audit.events_csv(items),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-events.csv"'},
    )


@router.get("/audit/access", response_model=list[audit.Access], responses=AUDITORS_ONLY)
def access_log(
    _: Auditor,
    engine: EngineDep,
    case_id: str | None = None,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[audit.Access]:
    """Who read which case, how and when."""
    return audit.access_log(engine, case_id=case_id, user_id=user_id, limit=limit)
