from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Body, Response, status

from api.deps import Caseworker, SettingsDep, TemporalDep
from api.errors import SIGNED_IN, WITH_BODY, responses
from api.opening import open_from
from api.routes.fhir import FhirDep, fhir_resource
from workflows.care.models import CaseDetail
from workflows.pathways import BY_TYPE

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseDetail,
    responses={
        200: {"model": CaseDetail, "description": "The order already has a case: that case"},
        **responses(
            *SIGNED_IN,
            *WITH_BODY,
            502,
            503,
            said={
                403: "An auditor, or an order routed to another team than yours",
                422: "Not a valid FHIR R4 ServiceRequest order",
            },
        ),
    },
)
async def open_referral(
    response: Response,
    client: TemporalDep,
    settings: SettingsDep,
    actor: Caseworker,
    fhir: FhirDep,
    service_request: dict[str, Any] = Body(
        description="A FHIR R4 ServiceRequest (intent order, status active)",
        json_schema_extra=fhir_resource(BY_TYPE["referral"].opens_from),
    ),
) -> CaseDetail:
    """Open a referral case for an order. The same order again answers with the same case.

    Coordinators and supervisors open cases for their own team (the team the order routes to);
    admins for any. An order that needs prior authorization opens its authorization case too
    (see `POST /api/v1/cases`)."""
    opened = await open_from(client, fhir, settings, actor, service_request)
    referral = next(case for case in opened if case.case_type == "referral")
    structlog.contextvars.bind_contextvars(case_id=referral.case_id)
    if not referral.created:
        response.status_code = status.HTTP_200_OK
    return referral
