"""The payer's PAS subscription notifications: a decision on a pended request, told to its case.

The payer calls with the credential our Subscription gave it (PAYER_NOTIFICATION_TOKEN), not a
person's token. A decision is signalled to the case's workflow as `payer_decided`; the same
decision delivered twice is signalled twice (PasDecision.response tells the workflow it is the
same one). A case that is gone is answered 202 too, so the payer does not retry forever.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from activities.payer.response import (
    QUIET_TYPES,
    InvalidPasResponse,
    notification_type,
    parse_notification,
)
from api.deps import SettingsDep, TemporalDep, integration_token
from api.errors import INTEGRATION, responses
from workers.settings import DEV_PAYER_NOTIFICATION_TOKEN

router = APIRouter(prefix="/api/v1/payer", tags=["payer"])
log = structlog.get_logger(__name__)
bearer = HTTPBearer(auto_error=False)
SIGNAL = "payer_decided"


class PayerNotificationResult(BaseModel):
    delivered: bool  # signalled to a running case
    case_id: str | None = None


def payer_integration(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    integration_token(
        credentials,
        settings,
        expected=settings.payer_notification_token,
        development=DEV_PAYER_NOTIFICATION_TOKEN,
        variable="PAYER_NOTIFICATION_TOKEN",
        who="payer's notification",
    )


@router.post(
    "/notifications",
    response_model=PayerNotificationResult,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(payer_integration)],
    responses={
        200: {
            "model": PayerNotificationResult,
            "description": "A handshake or heartbeat: nothing to deliver",
        },
        202: {"description": "Delivered to the case, or the case is closed (`delivered` false)"},
        **responses(
            *INTEGRATION,
            said={
                401: "Missing or wrong payer credential",
                422: "Not a PAS notification carrying a PAS response",
                503: "The case could not be told now; send the notification again",
            },
        ),
    },
)
async def payer_notification(
    response: Response,
    client: TemporalDep,
    body: Any = Body(
        description="A PAS subscription notification (history Bundle)",
        json_schema_extra={
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"const": "Bundle"}},
        },
    ),
) -> PayerNotificationResult:
    """Tell the case the payer's decision on its pended prior authorization request."""
    try:
        kind = notification_type(body)
        if kind in QUIET_TYPES:
            response.status_code = status.HTTP_200_OK
            return PayerNotificationResult(delivered=False)
        decision = parse_notification(body)
    except InvalidPasResponse as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    structlog.contextvars.bind_contextvars(case_id=decision.case_id)
    try:
        await client.get_workflow_handle(decision.case_id).signal(SIGNAL, decision)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            log.warning("payer_notification_undelivered", why=err.status.name)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "The case could not be told now; send the notification again later",
                headers={"Retry-After": "30"},
            ) from None
        log.info("payer_notification_for_closed_case", response=decision.response)
        return PayerNotificationResult(delivered=False, case_id=decision.case_id)
    log.info("payer_notification_delivered", response=decision.response)
    return PayerNotificationResult(delivered=True, case_id=decision.case_id)
