"""From a FHIR R4 ServiceRequest to the input of a prior-authorization case, when the order
needs one: as the order itself says (Da Vinci CRD coverage information), else as the rules table
says for its service and payer."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from workflows.care.orders import (
    REFERENCE,
    check_active_order,
    location_of,
    order_summary,
    parse_service_request,
    service_codes,
)
from workflows.care.pathway import Linked
from workflows.prior_auth.models import PriorAuthInput, ServiceItem
from workflows.prior_auth.rules import (
    ANY_PAYER,
    AuthorizationRule,
    Prerequisite,
    PrerequisiteKind,
    rule_for,
)

ID_PREFIX = "priorauth"
# The referral pathway's prefix (workflows/referral/intake.py imports this module, so it is not
# imported from there; a test holds the two together).
REFERRAL_PREFIX = "referral"
CRD = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
NEEDED, NOT_NEEDED = {"auth-needed"}, {"no-auth", "satisfied"}
# What CRD's doc-needed asks for, as prerequisites when the rules table has no row.
DOCUMENTATION = {
    "clinical": [PrerequisiteKind.CLINICAL_NOTES],
    "admin": [PrerequisiteKind.COVERAGE],
    "both": [PrerequisiteKind.CLINICAL_NOTES, PrerequisiteKind.COVERAGE],
}
EXPEDITED = {"urgent", "asap", "stat"}  # order priorities asked for as CMS-0057-F expedited
CPT = "http://www.ama-assn.org/go/cpt"


def needs_authorization(order: ServiceRequest, linked: Linked) -> AuthorizationRule | None:
    """The rule the order's authorization follows, or None when it needs none. CRD's answer on
    the order wins over the table; the table still says which prerequisites to collect."""
    codes = service_codes(order)
    payer = _payer(order, linked)
    rule = rule_for(linked.settings.prior_auth_rules, codes, payer and payer.split("/", 1)[1])
    answer, documentation = _crd(order)
    if answer in NOT_NEEDED:
        return None
    if answer in NEEDED:
        if rule is not None:
            return rule.model_copy(update={"required": True})
        kinds = DOCUMENTATION.get(documentation or "", [PrerequisiteKind.COVERAGE])
        return AuthorizationRule(
            service=codes[0] if codes else ANY_PAYER,
            payer=payer.split("/", 1)[1] if payer else ANY_PAYER,
            prerequisites=[Prerequisite(kind=kind) for kind in kinds],
        )
    return rule if rule is not None and rule.required else None


def prior_auth_input(resource: dict[str, Any], linked: Linked) -> PriorAuthInput | None:
    order = parse_service_request(resource)
    patient = check_active_order(order)
    rule = needs_authorization(order, linked)
    if rule is None:
        return None
    settings = linked.settings
    requester = order.requester.reference if order.requester else None
    return PriorAuthInput(
        case_id=f"{ID_PREFIX}-{order.id}",
        order=order_summary(order, patient),
        team=settings.prior_auth_team,
        priority=order.priority or "routine",
        location=location_of(order),
        calendar=settings.calendar,
        policy=settings.prior_auth_policy,
        ehr=settings.ehr_verification,
        items=_items(order, rule),
        coverage=_coverage(order),
        payer=_payer(order, linked),
        provider=requester if requester and REFERENCE.match(requester) else None,
        expedited=order.priority in EXPEDITED,
        prerequisites=rule.prerequisites,
        referral=f"{REFERRAL_PREFIX}-{order.id}",
    )


def authorization_case(order: ServiceRequest, linked: Linked) -> str | None:
    """The id of the prior-authorization case the order opens, if it needs one."""
    return f"{ID_PREFIX}-{order.id}" if needs_authorization(order, linked) else None


def _crd(order: ServiceRequest) -> tuple[str | None, str | None]:
    """CRD's pa-needed and doc-needed codes on the order (the first coverage-information)."""
    for extension in order.extension or []:
        if extension.url == CRD:
            parts = {part.url: part.valueCode for part in extension.extension or []}
            return parts.get("pa-needed"), parts.get("doc-needed")
    return None, None


def _coverage(order: ServiceRequest) -> str | None:
    """The Coverage the order names: its insurance, else CRD's coverage information's."""
    named = [ref.reference for ref in order.insurance or [] if ref.reference]
    for extension in order.extension or []:
        if extension.url == CRD:
            named += [
                part.valueReference.reference
                for part in extension.extension or []
                if part.url == "coverage" and part.valueReference and part.valueReference.reference
            ]
    return next(
        (ref for ref in named if ref.startswith("Coverage/") and REFERENCE.match(ref)), None
    )


def _payer(order: ServiceRequest, linked: Linked) -> str | None:
    """The payer's Organization reference, from the order's Coverage as the EHR has it."""
    coverage = linked.resources.get(_coverage(order) or "")
    if coverage is None:
        found = [r for r in linked.resources.values() if r.get("resourceType") == "Coverage"]
        coverage = found[0] if found else {}
    for payor in coverage.get("payor") or []:
        reference = payor.get("reference") or ""
        if reference.startswith("Organization/") and REFERENCE.match(reference):
            return reference
    return None


def _items(order: ServiceRequest, rule: AuthorizationRule) -> list[ServiceItem]:
    """The service as the payer is asked for it: the coding the rule matched, else a CPT one,
    else the first."""
    codings = [c for c in (order.code.coding or []) if c.code] if order.code else []
    chosen = (
        next((c for c in codings if c.code == rule.service), None)
        or next((c for c in codings if c.system == CPT), None)
        or (codings[0] if codings else None)
    )
    if chosen is None:
        text = order.code.text if order.code and order.code.text else None
        return [ServiceItem(code=rule.service, display=text)]
    return [ServiceItem(code=chosen.code, system=chosen.system or CPT, display=chosen.display)]
