"""From a FHIR R4 ServiceRequest to the input of a referral case."""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from api.errors import problems
from workers.settings import Settings
from workflows.care.models import OrderSummary
from workflows.referral.models import Priority, ReferralInput

ORDER_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")


class InvalidOrder(Exception):
    """The order cannot open a case; `errors` says why, without echoing its content."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def _problem(loc: str, msg: str) -> dict[str, Any]:
    return {"loc": loc.split("."), "msg": msg, "type": "value_error"}


def parse_service_request(body: Any) -> ServiceRequest:
    if not isinstance(body, dict) or body.get("resourceType") != "ServiceRequest":
        raise InvalidOrder([_problem("resourceType", "expected a FHIR R4 ServiceRequest")])
    try:
        return ServiceRequest.model_validate(body)
    except ValidationError as err:
        # Never echo the input: it may carry PHI.
        raise InvalidOrder(problems(err)) from None


def case_id_for(order: ServiceRequest) -> str:
    """The workflow id: derived from the order's logical id, so one order is one case."""
    return f"referral-{order.id}"


def referral_input(order: ServiceRequest, settings: Settings) -> ReferralInput:
    problems = []
    if not order.id or not FHIR_ID.match(order.id):
        problems.append(_problem("id", "the order needs a FHIR id ([A-Za-z0-9-.], up to 64)"))
    if order.intent not in ORDER_INTENTS:
        problems.append(
            _problem("intent", f"intent must be an order ({', '.join(sorted(ORDER_INTENTS))})")
        )
    if order.status != "active":
        problems.append(_problem("status", "only an active order opens a case"))
    subject = order.subject.reference if order.subject else None
    if not subject or not (match := REFERENCE.match(subject)) or match["type"] != "Patient":
        problems.append(_problem("subject", "subject must reference a Patient (Patient/<id>)"))
    if order.priority and order.priority not in Priority.__members__.values():
        problems.append(_problem("priority", "priority must be routine, urgent, asap or stat"))
    if problems:
        raise InvalidOrder(problems)
    return ReferralInput(
        case_id=case_id_for(order),
        order=OrderSummary(
            resource=f"ServiceRequest/{order.id}",
            patient=subject,
            service=_service(order),
            requester=order.requester.reference if order.requester else None,
            authored_on=order.authoredOn,
        ),
        priority=Priority(order.priority or "routine"),
        team=_team(order, settings),
        location=_location(order),
        calendar=settings.calendar,
        policy=settings.referral_policy,
        ehr=settings.ehr_verification,
    )


def _codes(order: ServiceRequest) -> list[str]:
    concepts = [
        order.code,
        *(order.category or []),
        *(order.performerType and [order.performerType] or []),
    ]
    return [
        coding.code
        for concept in concepts
        if concept
        for coding in concept.coding or []
        if coding.code
    ]


def _team(order: ServiceRequest, settings: Settings) -> str:
    for code in _codes(order):
        if code in settings.team_routes:
            return settings.team_routes[code]
    return settings.default_team


def _service(order: ServiceRequest) -> str:
    if order.code:
        if order.code.text:
            return order.code.text
        for coding in order.code.coding or []:
            if coding.display:
                return coding.display
    return "Unspecified service"


def _location(order: ServiceRequest) -> str | None:
    for ref in order.locationReference or []:
        if ref.reference and (match := REFERENCE.match(ref.reference)):
            return match["id"]
    return None
