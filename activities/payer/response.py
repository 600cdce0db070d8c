"""The payer's answer, read: a PAS response Bundle (or a subscription notification carrying one)
becomes a PasDecision.

Pure functions, shared by the activities and the notification webhook. A malformed answer raises
`InvalidPasResponse`, whose message says what is wrong and where, never what the payer sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from activities.fhir.task import CASE_SYSTEM
from activities.payer import codes
from activities.payer.bundle import CLAIM_IDENTIFIER
from activities.payer.models import ItemDecision, PasDecision, ReviewAction

QUIET_TYPES = {"handshake", "heartbeat"}  # a subscription's liveness: no decision in them


class InvalidPasResponse(ValueError):
    """Not a PAS response the activities or the webhook can act on."""


def _extension(element: dict[str, Any], *urls: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension") or [] if e.get("url") in urls), None)


def _coding(concept: dict[str, Any] | None, system: str | None = None) -> dict[str, Any] | None:
    for coding in (concept or {}).get("coding") or []:
        if system is None or coding.get("system") == system:
            return coding
    return None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def _validated(bundle: Any, what: str) -> dict[str, Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidPasResponse(f"The {what} is not a FHIR Bundle")
    try:
        Bundle.model_validate(bundle)
    except ValidationError as err:
        where = ".".join(str(part) for part in err.errors()[0]["loc"])
        raise InvalidPasResponse(
            f"The {what} is not valid FHIR R4 ({err.error_count()} errors, first at {where})"
        ) from None
    return bundle


def parse_response(bundle: Any) -> PasDecision:
    """A PAS response Bundle: its ClaimResponse first, each item's review action on its
    adjudication (X12 306), the auth number, validity period, denial reason or pend reference."""
    bundle = _validated(bundle, "payer's answer")
    entries = bundle.get("entry") or []
    response = entries[0].get("resource") if entries else None
    if not response or response.get("resourceType") != "ClaimResponse":
        raise InvalidPasResponse("The first entry of a PAS response is not a ClaimResponse")
    case_id, submission = _request_of(response)
    payer_ids = [i for i in response.get("identifier") or [] if i.get("system") != CASE_SYSTEM]
    if not payer_ids or not payer_ids[0].get("value"):
        raise InvalidPasResponse("The ClaimResponse has no identifier of the payer's")
    period = response.get("preAuthPeriod") or {}
    pend = _extension(response, codes.ADMINISTRATION_REFERENCE)
    items = [
        _item(
            item,
            auth_number=response.get("preAuthRef"),
            period=period,
            pended=pend.get("valueString") if pend else None,
        )
        for item in response.get("item") or []
    ]
    return PasDecision(
        case_id=case_id,
        submission=submission,
        response=payer_ids[0]["value"],
        outcome=response.get("outcome") or "",
        items=items,
        decided_at=datetime.fromisoformat(response["created"]),
    )


def _request_of(response: dict[str, Any]) -> tuple[str, int]:
    """The case and submission, from the identifier of the Claim the response answers."""
    candidates = [(response.get("request") or {}).get("identifier") or {}]
    candidates += response.get("identifier") or []
    for identifier in candidates:
        if identifier.get("system") == CASE_SYSTEM:
            match = CLAIM_IDENTIFIER.match(identifier.get("value") or "")
            if match:
                return match["case_id"], int(match["submission"])
    raise InvalidPasResponse("The ClaimResponse does not name a Followthrough request")


def _item(
    item: dict[str, Any], *, auth_number: str | None, period: dict[str, Any], pended: str | None
) -> ItemDecision:
    if not isinstance(item.get("itemSequence"), int):
        raise InvalidPasResponse("A ClaimResponse item has no itemSequence")
    review = next(
        (
            found
            for adjudication in item.get("adjudication") or []
            if (found := _extension(adjudication, codes.REVIEW_ACTION))
        ),
        None,
    )
    if review is None:
        raise InvalidPasResponse(f"Item {item['itemSequence']} has no reviewAction")
    parts = {e.get("url"): e for e in review.get("extension") or []}
    code = parts.get(codes.REVIEW_ACTION_CODE) or parts.get("code") or {}
    coding = _coding(code.get("valueCodeableConcept"), codes.X12_306)
    try:
        action = ReviewAction((coding or {}).get("code"))
    except ValueError:
        raise InvalidPasResponse(
            f"Item {item['itemSequence']} has no X12 306 review action code"
        ) from None
    decision = ItemDecision(sequence=item["itemSequence"], action=action)
    if action in (ReviewAction.CERTIFIED, ReviewAction.PARTIAL, ReviewAction.MODIFIED):
        own = _extension(item, codes.ITEM_PREAUTH_PERIOD)
        valid = (own or {}).get("valuePeriod") or period
        decision.auth_number = (parts.get("number") or {}).get("valueString") or auth_number
        decision.valid_from, decision.valid_to = _date(valid.get("start")), _date(valid.get("end"))
    reason = _coding((parts.get("reasonCode") or {}).get("valueCodeableConcept"))
    if reason and reason.get("code"):
        display = reason.get("display")
        decision.reason = f"{reason['code']} ({display})" if display else reason["code"]
    if action == ReviewAction.PENDED:
        own = _extension(item, codes.ADMINISTRATION_REFERENCE)
        decision.pended_reference = (own or {}).get("valueString") or pended
    return decision


def notification_type(bundle: Any) -> str:
    """A subscription notification's type: event-notification, handshake, heartbeat, ..."""
    parameters = _status(_validated(bundle, "notification"))
    kind = next((p.get("valueCode") for p in parameters if p.get("name") == "type"), None)
    if not kind:
        raise InvalidPasResponse("The notification's status does not say its type")
    return kind


def parse_notification(bundle: Any) -> PasDecision:
    """The decision a PAS event notification carries: a `history` Bundle whose first entry is the
    subscription status (Parameters) and whose notification-event focus is the full PAS response
    Bundle, also in the notification (PAS spec-61)."""
    bundle = _validated(bundle, "notification")
    focus = [
        part["valueReference"].get("reference")
        for p in _status(bundle)
        if p.get("name") == "notification-event"
        for part in p.get("part") or []
        if part.get("name") == "focus" and part.get("valueReference")
    ]
    if not focus:
        raise InvalidPasResponse("The notification names no focus (is it an event notification?)")
    for entry in bundle["entry"][1:]:
        resource = entry.get("resource") or {}
        names = {entry.get("fullUrl"), f"{resource.get('resourceType')}/{resource.get('id')}"}
        if focus[0] in names or any(focus[0].endswith(f"/{n}") for n in names if n):
            return parse_response(resource)
    raise InvalidPasResponse("The notification does not include its focus, the PAS response")


def _status(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The subscription status's parameters."""
    if bundle.get("type") != "history":
        raise InvalidPasResponse("A notification is a history Bundle")
    entries = bundle.get("entry") or []
    status = entries[0].get("resource") if entries else None
    if not status or status.get("resourceType") != "Parameters":
        raise InvalidPasResponse("A notification's first entry is its status (Parameters)")
    return status.get("parameter") or []
