"""The patient behind a case, for the care team: read from the EHR now, never stored."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path

from api import audit, cases, patients
from api.deps import CurrentUser, EngineDep, TemporalDep
from api.errors import CASE_SCOPED, responses

router = APIRouter(prefix="/api/v1/cases", tags=["patients"])
CaseId = Annotated[str, Path(pattern=r"^[a-z]+-[A-Za-z0-9\-.]{1,64}$")]


@router.get(
    "/{case_id}/patient", response_model=patients.PatientCard, responses=responses(*CASE_SCOPED)
)
async def read_patient(
    case_id: CaseId,
    client: TemporalDep,
    actor: CurrentUser,
    engine: EngineDep,
    ehr: patients.PatientEhrDep,
) -> patients.PatientCard:
    """Who the patient is, as much as your role needs (see the README); `available` false when
    the EHR cannot answer. Every read that answers goes to the access log."""
    structlog.contextvars.bind_contextvars(case_id=case_id)
    case = await cases.read_case(client, case_id, actor)
    card = await patients.read_patient(ehr, actor, case.order.patient)
    if card.available:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        audit.record_access(engine, actor, case_id, "patient", request_id)
    return card
