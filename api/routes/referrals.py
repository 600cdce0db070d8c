from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Body, HTTPException, Response, status

from api import cases
from api.deps import Caseworker, SettingsDep, TemporalDep
from api.orders import InvalidOrder, parse_service_request, referral_input
from api.routes.fhir import FhirDep, require_patient
from workflows.care.models import CaseDetail, Role

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"])
log = structlog.get_logger(__name__)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseDetail,
    responses={
        200: {"description": "The order already has a case: that case"},
        403: {"description": "An auditor, or an order routed to another team than yours"},
        422: {"description": "Not a valid FHIR R4 ServiceRequest order"},
    },
)
async def open_referral(
    response: Response,
    client: TemporalDep,
    settings: SettingsDep,
    actor: Caseworker,
    fhir: FhirDep,
    service_request: dict[str, Any] = Body(
        description="A FHIR R4 ServiceRequest (intent order, status active)"
    ),
) -> CaseDetail:
    """Open a referral case for an order. The same order again answers with the same case.

    Coordinators and supervisors open cases for their own team (the team the order routes to);
    admins for any."""
    try:
        order = referral_input(parse_service_request(service_request), settings)
    except InvalidOrder as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.errors) from None
    if actor.role != Role.ADMIN and order.team != actor.team:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"This order is routed to team {order.team}; you may open cases for team "
            f"{actor.team} only",
        )
    if order.ehr:
        await require_patient(fhir, order.order.patient)
    structlog.contextvars.bind_contextvars(case_id=order.case_id)
    opened = await cases.open_referral(client, order, settings.temporal_task_queue)
    if not opened.created:
        response.status_code = status.HTTP_200_OK
    log.info("referral_opened" if opened.created else "referral_already_open")
    return opened.case
