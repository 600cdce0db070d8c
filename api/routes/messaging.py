"""Messages to patients: Twilio's webhooks (delivery status, patients' texts) and the care team's
list of what a case sent.

Twilio calls with no credential of ours: a request is taken only with a valid
`X-Twilio-Signature` (HMAC-SHA1 under TWILIO_AUTH_TOKEN over the URL Twilio called and every
POST parameter), checked before anything is read or changed; forged or unsigned requests get 403.
Phone numbers and texts are PHI: none of them is logged or answered back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from xml.sax.saxutils import escape

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.messaging import records
from activities.messaging.addresses import address_hash
from activities.messaging.send import INBOUND_PATH, STATUS_PATH
from activities.messaging.tables import InboundRecord
from api import cases
from api.deps import CurrentUser, EngineDep, SettingsDep, TemporalDep
from api.routes.cases import log_access
from workers.settings import Settings
from workflows.care.messaging import (
    DELIVERY_SIGNAL,
    REPLY_SIGNAL,
    DeliveryNews,
    DeliveryStatus,
    Medium,
    ReplyKind,
    ReplyNews,
    classify,
)

router = APIRouter(prefix="/api/v1", tags=["messaging"])
log = structlog.get_logger(__name__)

TWIML = "application/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's message statuses, as the delivery statuses a case knows.
STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    }
}
SIGNED_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "Missing or wrong X-Twilio-Signature: nothing was read or changed"},
    422: {"description": "Signed, but a parameter Twilio always sends is missing"},
    503: {"description": "The case could not be told now; Twilio may send it again"},
}


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()


def called_url(request: Request, settings: Settings) -> str:
    """The URL Twilio called: behind a proxy, PUBLIC_URL with the path and query."""
    if not settings.public_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return settings.public_url.rstrip("/") + request.url.path + query


async def signed_form(request: Request, settings: SettingsDep) -> dict[str, str]:
    """The request's form parameters, when Twilio signed them; else 403."""
    token = settings.twilio_auth_token
    given = request.headers.get("x-twilio-signature", "")
    params: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params = {key: str(value) for key, value in (await request.form()).items()}
    expected = signature(token, called_url(request, settings), params) if token else ""
    if not (token and given and hmac.compare_digest(given.encode(), expected.encode())):
        log.warning("twilio_signature_refused", path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Not signed by Twilio for this account")
    return params


SignedForm = Annotated[dict[str, str], Depends(signed_form)]


def required(params: dict[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"Missing parameters: {', '.join(missing)}"
        )
    return [params[name] for name in names]


async def tell(client: Client, case_id: str, signal: str, news: BaseModel) -> bool:
    """Signal the case; False when it is closed or gone (answered 200: nothing to retry)."""
    try:
        await client.get_workflow_handle(case_id).signal(signal, news)
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            log.info("messaging_news_for_closed_case", case_id=case_id, signal=signal)
            return False
        why = err.status.name
    except Exception as err:  # Temporal could not be reached at all
        why = type(err).__name__
    log.warning("messaging_news_undelivered", case_id=case_id, why=why)
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The case could not be told now",
        headers={"Retry-After": "30"},
    )


@router.post(
    STATUS_PATH.removeprefix(router.prefix),
    openapi_extra=FORM_BODY,
    status_code=status.HTTP_200_OK,
    responses={200: {"description": "Taken (or not one of ours, or old news)"}, **SIGNED_RESPONSES},
)
async def twilio_status(params: SignedForm, client: TemporalDep, engine: EngineDep) -> Response:
    """A message's delivery status (Twilio's StatusCallback). A status never moves a message
    back, the same one twice changes nothing, and the case hears of its first final status."""
    sid, reported = required(params, "MessageSid", "MessageStatus")
    delivery_status = STATUSES.get(reported)
    if delivery_status is None:
        return Response(status_code=status.HTTP_200_OK)
    error_code = params.get("ErrorCode") or None
    delivery = await asyncio.to_thread(
        records.record_delivery, engine, sid, delivery_status, error_code
    )
    if delivery is None:
        log.info("twilio_status_unknown_message", status=reported)
        return Response(status_code=status.HTTP_200_OK)
    row = delivery.row
    structlog.contextvars.bind_contextvars(case_id=row.case_id, attempt_id=row.attempt_id)
    log.info("twilio_status", status=reported, changed=delivery.changed, error_code=error_code)
    if delivery.newly_final:
        news = DeliveryNews(
            attempt_id=row.attempt_id,
            provider_id=sid,
            status=delivery_status,
            error_code=error_code,
            at=datetime.now(UTC),
        )
        try:
            await tell(client, row.case_id, DELIVERY_SIGNAL, news)
        except HTTPException:
            await asyncio.to_thread(records.undo_delivery, engine, delivery)
            raise
    return Response(status_code=status.HTTP_200_OK)


def help_text(settings: Settings) -> str:
    return (
        f"{settings.outreach_sender_name}: messages about your care. "
        f"Questions? Call {settings.outreach_callback_phone}. Reply STOP to opt out."
    )


def twiml(message: str | None) -> Response:
    if message is None:
        return Response(EMPTY_TWIML, media_type=TWIML)
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(message)}</Message></Response>",
        media_type=TWIML,
    )


@router.post(
    INBOUND_PATH.removeprefix(router.prefix),
    openapi_extra=FORM_BODY,
    response_class=Response,
    responses={
        200: {
            "description": "TwiML: empty, or for HELP a message saying who writes and how to "
            "opt out",
            "content": {TWIML: {}},
        },
        **SIGNED_RESPONSES,
    },
)
async def twilio_inbound(
    params: SignedForm, client: TemporalDep, engine: EngineDep, settings: SettingsDep
) -> Response:
    """A patient's text to one of our numbers. An opt-out or opt-in holds at once for every
    case; the text goes to the case whose conversation it answers (our number and the patient's
    address together), never to a case guessed from the phone number alone."""
    sid, sender, ours = required(params, "MessageSid", "From", "To")
    body = params.get("Body", "")
    hashed = address_hash(settings.messaging_address_key, Medium.SMS, sender)
    consent_before = await asyncio.to_thread(records.opted_out, engine, hashed, Medium.SMS)
    kind = classify(body, opted_out=consent_before)
    answer = help_text(settings) if kind == ReplyKind.HELP else None
    answers = await asyncio.to_thread(records.answered, engine, hashed, ours)
    inbound = InboundRecord(
        provider_id=sid,
        channel=Medium.SMS.value,
        attempt_id=answers.attempt_id if answers else None,
        case_id=answers.case_id if answers else None,
        kind=kind.value,
    )
    # The same text delivered again changes nothing and tells no case twice.
    if not await asyncio.to_thread(records.claim_inbound, engine, inbound):
        log.info("twilio_inbound_again", kind=kind.value)
        return twiml(answer)
    if kind in (ReplyKind.OPT_OUT, ReplyKind.OPT_IN):
        await asyncio.to_thread(
            records.set_consent,
            engine,
            hashed,
            Medium.SMS,
            opted_out=kind == ReplyKind.OPT_OUT,
            keyword=body.strip().upper()[:20],
        )
        log.info("sms_consent", consent=kind.value)
    if answers is None:
        log.info("twilio_inbound_unmatched", kind=kind.value)
        return twiml(answer)
    structlog.contextvars.bind_contextvars(case_id=answers.case_id, attempt_id=answers.attempt_id)
    news = ReplyNews(
        message_id=sid,
        in_reply_to=answers.attempt_id,
        channel=Medium.SMS,
        kind=kind,
        body=body[:1600],
        at=datetime.now(UTC),
    )
    try:
        await tell(client, answers.case_id, REPLY_SIGNAL, news)
    except HTTPException:
        await asyncio.to_thread(records.forget_inbound, engine, sid)
        raise
    log.info("twilio_inbound", kind=kind.value)
    return twiml(answer)


class CaseMessage(BaseModel):
    attempt_id: str
    channel: str
    kind: str
    status: str  # a SendStatus ("sending" while the outcome is not known)
    delivery: str | None  # the provider's DeliveryStatus
    error_code: str | None
    segments: int
    sent_at: datetime | None
    subject: str | None
    body: str


CaseId = Annotated[str, Path(pattern=r"^[a-z]+-[A-Za-z0-9\-.]{1,64}$")]


@router.get(
    "/cases/{case_id}/messages",
    response_model=list[CaseMessage],
    responses={
        403: {"description": "Another team's case, or no such case (the same answer)"},
        404: {"description": "No such case (auditors and admins)"},
    },
)
async def case_messages(
    case_id: CaseId, client: TemporalDep, actor: CurrentUser, engine: EngineDep
) -> list[CaseMessage]:
    """What the case sent the patient, oldest first, with where each message stands."""
    structlog.contextvars.bind_contextvars(case_id=case_id)
    await cases.read_case(client, case_id, actor)
    log_access(engine, actor, case_id, "messages")
    rows = await asyncio.to_thread(records.case_messages, engine, case_id)
    return [CaseMessage.model_validate(row, from_attributes=True) for row in rows]
