"""Which orders open a prior-authorization case, and with what: CRD's word on the order first,
else the rules table by service code and payer."""

from __future__ import annotations

from typing import Any

from workers.settings import Settings
from workflows import pathways
from workflows.care.models import Role
from workflows.care.orders import parse_service_request
from workflows.care.pathway import Linked
from workflows.prior_auth import intake
from workflows.prior_auth.intake import CRD, needs_authorization, prior_auth_input
from workflows.prior_auth.rules import AuthorizationRule, Prerequisite, PrerequisiteKind
from workflows.referral import intake as referral_intake
from workflows.referral.intake import referral_input

CPT = "http://www.ama-assn.org/go/cpt"
NOTES = Prerequisite(kind=PrerequisiteKind.CLINICAL_NOTES, within_days=30)
THERAPY = Prerequisite(kind=PrerequisiteKind.CONSERVATIVE_THERAPY, weeks=6)
RULES = [
    AuthorizationRule(service="72148", prerequisites=[NOTES, THERAPY]),
    AuthorizationRule(service="72148", payer="strict-plan", prerequisites=[NOTES]),
    AuthorizationRule(service="71045", required=False),
]
COVERAGE = {
    "resourceType": "Coverage",
    "id": "cov-1",
    "status": "active",
    "beneficiary": {"reference": "Patient/p1"},
    "payor": [{"reference": "Organization/strict-plan"}],
}


def order(code: str = "72148", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "sr-1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/doc-1"},
        "code": {"coding": [{"system": CPT, "code": code, "display": "MRI lumbar spine"}]},
        **more,
    }


def crd(pa_needed: str, doc_needed: str | None = None) -> dict[str, Any]:
    parts = [
        {"url": "covered", "valueCode": "covered"},
        {"url": "pa-needed", "valueCode": pa_needed},
    ]
    if doc_needed:
        parts.append({"url": "doc-needed", "valueCode": doc_needed})
    return {"extension": [{"url": CRD, "extension": parts}]}


def linked(resources: dict[str, dict] | None = None) -> Linked:
    return Linked(Settings(prior_auth_rules=RULES), resources or {})


def rule(resource: dict[str, Any], resources: dict[str, dict] | None = None):
    return needs_authorization(parse_service_request(resource), linked(resources))


def test_the_rules_table_by_service_and_payer():
    assert rule(order()) == RULES[0]  # no payer known: the any-payer row
    insured = order(insurance=[{"reference": "Coverage/cov-1"}])
    assert rule(insured, {"Coverage/cov-1": COVERAGE}) == RULES[1]  # the payer's own row
    assert rule(order("71045")) is None  # a row saying not required
    assert rule(order("99999")) is None  # no row


def test_crd_on_the_order_wins_over_the_table():
    assert rule(order(**crd("no-auth"))) is None
    assert rule(order(**crd("satisfied"))) is None
    needed = rule(order("71045", **crd("auth-needed")))
    assert needed is not None and needed.required and needed.service == "71045"
    # No row for the service: the documentation CRD asks for becomes the checklist.
    hinted = rule(order("99999", **crd("auth-needed", "clinical")))
    assert hinted is not None
    assert [p.kind for p in hinted.prerequisites] == [PrerequisiteKind.CLINICAL_NOTES]
    assert rule(order(**crd("conditional"))) == RULES[0]  # undecided: the table decides


def test_the_case_input_from_the_order():
    resource = order(priority="urgent", insurance=[{"reference": "Coverage/cov-1"}])
    case = prior_auth_input(resource, linked({"Coverage/cov-1": COVERAGE}))
    assert case is not None
    assert (case.case_id, case.team, case.referral) == (
        "priorauth-sr-1",
        "authorizations",
        "referral-sr-1",
    )
    assert (case.coverage, case.payer, case.provider) == (
        "Coverage/cov-1",
        "Organization/strict-plan",
        "Practitioner/doc-1",
    )
    assert case.expedited is True
    assert [(i.code, i.system, i.display) for i in case.items] == [
        ("72148", CPT, "MRI lumbar spine")
    ]
    assert case.prerequisites == [NOTES]
    assert prior_auth_input(order("99999"), linked()) is None


def test_the_referral_of_an_order_that_needs_authorization_names_its_case():
    assert referral_input(order(), linked()).authorization == "priorauth-sr-1"
    assert referral_input(order("99999"), linked()).authorization is None
    assert intake.REFERRAL_PREFIX == referral_intake.ID_PREFIX


def test_the_pathway_is_declared():
    pathway = pathways.BY_TYPE["prior_auth"]
    assert pathways.for_case("priorauth-sr-1") is pathway
    assert pathway.action("waive-prerequisite").roles == {Role.SUPERVISOR, Role.ADMIN}
    assert pathway.closed_stages == {"delivered", "cancelled", "closed_denied"}
    assert {a.update for a in pathway.actions} <= set(dir(pathway.workflow))
