"""FHIR Subscription notifications from the EHR: open or signal the case at once.

Accepts an R4B-style notification Bundle (`history` or `subscription-notification`, full-resource
or id-only) or a plain `{"reference": "ServiceRequest/123"}`. The pushed content is never trusted:
every resource named is read back from the EHR, which stays the source of truth. The EHR calls
with its own integration credential (FHIR_NOTIFICATION_TOKEN), not a person's token.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fhir.resources.R4B.bundle import Bundle
from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.fhir.failures import NOT_FOUND
from activities.fhir.intake import OrderIntake, Taken
from api.deps import SettingsDep, TemporalDep, integration_token
from api.errors import INTEGRATION, problems, responses
from workers.settings import DEV_NOTIFICATION_TOKEN

router = APIRouter(prefix="/api/v1/fhir", tags=["fhir"])
log = structlog.get_logger(__name__)
bearer = HTTPBearer(auto_error=False)
REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)
MAX_RESOURCES = 100


def fhir_resource(*types: str) -> dict[str, Any]:
    """What the OpenAPI document can say of a FHIR resource body of one of these types; the rest
    is FHIR R4's own rules."""
    return {
        "required": ["resourceType"],
        "properties": {"resourceType": {"enum": sorted(set(types))}},
    }


class NotificationResult(BaseModel):
    results: list[Taken]


def integration(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    integration_token(
        credentials,
        settings,
        expected=settings.fhir_notification_token,
        development=DEV_NOTIFICATION_TOKEN,
        variable="FHIR_NOTIFICATION_TOKEN",
        who="EHR integration",
    )


def fhir_client(request: Request, settings: SettingsDep) -> FhirClient:
    # One pooled client per app, made on first use.
    state = request.app.state
    if getattr(state, "fhir", None) is None:
        state.fhir = FhirClient.from_settings(settings)
    return state.fhir


FhirDep = Annotated[FhirClient, Depends(fhir_client)]


async def require_patient(fhir: FhirClient, patient: str) -> None:
    """Refuse an order whose patient the EHR does not know: its case could never be verified."""
    try:
        await fhir.read(*patient.split("/", 1))
    except ApplicationError as err:
        if err.type == NOT_FOUND:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["subject"],
                        "msg": f"{patient} does not exist in the EHR",
                        "type": "value_error",
                    }
                ],
            ) from None
        if not err.non_retryable:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "The EHR did not answer; try again later",
                headers={"Retry-After": "60"},
            ) from None
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, err.message) from None


def referenced(body: Any) -> list[tuple[str, str]]:
    """The resources a notification names, as (type, id)."""
    if not isinstance(body, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Expected a JSON object")
    if body.get("resourceType") == "Bundle":
        try:
            bundle = Bundle.model_validate(body)
        except ValidationError as err:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                problems(err),
            ) from None
        names = []
        for entry in bundle.entry or []:
            resource = entry.resource
            if resource is not None:
                kind = resource.get_resource_type()
                if kind not in ("SubscriptionStatus", "Parameters") and resource.id:
                    names.append(f"{kind}/{resource.id}")
            elif entry.fullUrl:
                names.append(str(entry.fullUrl))
            elif entry.request and entry.request.url:
                names.append(str(entry.request.url))
    elif isinstance(body.get("reference"), str):
        names = [body["reference"]]
    else:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            'Expected a notification Bundle or a {"reference": "Type/id"}',
        )
    pairs = []
    for name in names[:MAX_RESOURCES]:
        match = REFERENCE.search(name)
        if not match:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "A notification entry names no Type/id"
            )
        pairs.append((match["type"], match["id"]))
    return pairs


@router.post(
    "/notifications",
    response_model=NotificationResult,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(integration)],
    responses=responses(
        *INTEGRATION,
        502,
        said={
            401: "Missing or wrong integration credential",
            422: "Invalid notification, or an order that cannot open a case",
            503: "The EHR or Temporal did not answer; send the notification again later",
        },
    ),
)
async def notification(
    client: TemporalDep,
    settings: SettingsDep,
    fhir: FhirDep,
    body: dict[str, Any] = Body(
        description="A FHIR notification Bundle or a reference",
        json_schema_extra={
            "anyOf": [
                fhir_resource("Bundle"),
                {
                    "required": ["reference"],
                    # The same pattern, without Python's group names (not in JSON Schema's regexes)
                    "properties": {
                        "reference": {
                            "type": "string",
                            "pattern": re.sub(r"\?P<\w+>", "", REFERENCE.pattern),
                        }
                    },
                },
            ]
        },
    ),
) -> NotificationResult:
    """Open the case for a new order, or tell an open case what changed in the EHR."""
    intake = OrderIntake(fhir, client, settings)
    results = []
    for kind, rid in referenced(body):
        try:
            resource = await fhir.read(kind, rid)
            results.append(await intake.take(resource))
        except ApplicationError as err:
            if err.type == NOT_FOUND:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, f"{kind}/{rid} is not in the EHR"
                ) from None
            if not err.non_retryable:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    "The EHR did not answer; send the notification again later",
                    headers={"Retry-After": "60"},
                ) from None
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, err.message) from None
    problems = [taken.problem for taken in results if taken.outcome == "invalid"]
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
    log.info("fhir_notification", outcomes=[taken.outcome for taken in results])
    return NotificationResult(results=results)
