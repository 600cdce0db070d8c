"""Reading a FHIR R4 ServiceRequest, the order most pathways open from: parsed and validated,
and the minimum necessary about it (references, the service's display text, its codes)."""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from workflows.care.models import OrderSummary
from workflows.care.pathway import InvalidResource, problem

ORDER_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
PRIORITIES = {"routine", "urgent", "asap", "stat"}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REFERENCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")


def validation_problems(err: ValidationError) -> list[dict[str, Any]]:
    """Validation errors as a 422's detail: location, message and type, never the input."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_input=False, include_url=False)
    ]


def parse_service_request(body: Any) -> ServiceRequest:
    if not isinstance(body, dict) or body.get("resourceType") != "ServiceRequest":
        raise InvalidResource([problem("resourceType", "expected a FHIR R4 ServiceRequest")])
    try:
        return ServiceRequest.model_validate(body)
    except ValidationError as err:
        # Never echo the input: it may carry PHI.
        raise InvalidResource(validation_problems(err)) from None


def check_active_order(order: ServiceRequest) -> str:
    """The checks every case opened from an order makes; answers the patient reference."""
    problems = []
    if not order.id or not FHIR_ID.match(order.id):
        problems.append(problem("id", "the order needs a FHIR id ([A-Za-z0-9-.], up to 64)"))
    if order.intent not in ORDER_INTENTS:
        problems.append(
            problem("intent", f"intent must be an order ({', '.join(sorted(ORDER_INTENTS))})")
        )
    if order.status != "active":
        problems.append(problem("status", "only an active order opens a case"))
    subject = order.subject.reference if order.subject else None
    if not subject or not (match := REFERENCE.match(subject)) or match["type"] != "Patient":
        problems.append(problem("subject", "subject must reference a Patient (Patient/<id>)"))
    if order.priority and order.priority not in PRIORITIES:
        problems.append(problem("priority", "priority must be routine, urgent, asap or stat"))
    if problems:
        raise InvalidResource(problems)
    return subject


def order_summary(order: ServiceRequest, patient: str) -> OrderSummary:
    return OrderSummary(
        resource=f"ServiceRequest/{order.id}",
        patient=patient,
        service=service_text(order),
        requester=order.requester.reference if order.requester else None,
        authored_on=order.authoredOn,
    )


def codes(order: ServiceRequest) -> list[str]:
    """Every code the order carries: its service, categories and performer type."""
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


def service_codes(order: ServiceRequest) -> list[str]:
    return [c.code for c in (order.code.coding or []) if c.code] if order.code else []


def team_for(order: ServiceRequest, routes: dict[str, str], default: str) -> str:
    for code in codes(order):
        if code in routes:
            return routes[code]
    return default


def service_text(order: ServiceRequest) -> str:
    if order.code:
        if order.code.text:
            return order.code.text
        for coding in order.code.coding or []:
            if coding.display:
                return coding.display
    return "Unspecified service"


def location_of(order: ServiceRequest) -> str | None:
    for ref in order.locationReference or []:
        if ref.reference and (match := REFERENCE.match(ref.reference)):
            return match["id"]
    return None
