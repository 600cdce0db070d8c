"""Opening cases from FHIR resources through the API: the same intake as detection, with the
caller's team checked and the patient checked in the EHR."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import HTTPException, status
from temporalio.client import Client

from activities.fhir.client import FhirClient
from activities.fhir.intake import intake, linked_resources
from api import cases
from api.routes.fhir import require_patient
from workers.settings import Settings
from workflows.care.models import Actor, CaseDetail, Role
from workflows.care.pathway import InvalidResource, Linked

log = structlog.get_logger(__name__)


async def open_from(
    client: Client,
    fhir: FhirClient,
    settings: Settings,
    actor: Actor,
    resource: Any,
    only: str | None = None,
) -> list[CaseDetail]:
    """Every case the resource opens (only the `only` pathway's, when given), opened or found.
    Coordinators and supervisors open cases for their own team; admins for any."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["body", "resourceType"],
                    "msg": "expected a FHIR R4 resource",
                    "type": "value_error",
                }
            ],
        )
    try:
        linked = Linked(
            settings, await linked_resources(fhir, resource) if settings.ehr_verification else {}
        )
        opening = intake(resource, linked)
    except InvalidResource as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.errors) from None
    if only is not None:
        opening = [(pathway, case) for pathway, case in opening if pathway.case_type == only]
    if not opening:
        kind = resource["resourceType"]
        what = f"no {only} case" if only else "no case"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["body"], "msg": f"This {kind} opens {what}", "type": "value_error"}],
        )
    teams = {case.team for _, case in opening}
    if actor.role != Role.ADMIN and actor.team not in teams:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"This {_what(resource)} is routed to team {', '.join(sorted(teams))}; you may open cases for "
            f"team {actor.team} only",
        )
    if any(case.ehr for _, case in opening):
        await require_patient(fhir, opening[0][1].order.patient)
    opened = await cases.open_cases(client, opening, settings.temporal_task_queue)
    for case in opened:
        log.info("case_opened" if case.created else "case_already_open", case_id=case.case_id)
    return opened


def _what(resource: dict[str, Any]) -> str:
    return "order" if resource["resourceType"] == "ServiceRequest" else "resource"
