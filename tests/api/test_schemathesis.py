"""The API's contract, fuzzed: schemathesis generates requests for every operation of the OpenAPI
document, valid and invalid, and checks each answer against the document with every check it
has (as `st run --checks all`): no 5xx, every status and content type documented, every body
(errors included) as its schema says, invalid input refused and valid input not.

Each generated request is sent as each kind of caller (admin, coordinator, supervisor, auditor;
the outside systems' webhooks with their own credential); one whose headers schemathesis made
invalid on purpose (a malformed credential among them) is sent as it is. Case-scoped operations
are sent, besides the case ids schemathesis makes up, to a real referral (team cardiology) and a
real prior-authorization case (team authorizations), so actions reach the workflows and their
validators. A made-up `page_token` is left out of valid requests: tokens are the API's own,
signed, and test_errors.py shows one made up is refused.

Checks left out, each where the document cannot carry what decides the answer:
- `positive_data_acceptance` (a request the document allows must not be refused with 400 or
  422) on `POST /api/v1/referrals`, `POST /api/v1/cases` and the two webhooks: the body is a
  FHIR R4 resource (an order, a notification Bundle); the document says it is an object with
  its `resourceType`, and FHIR R4's own rules (thousands of them, checked by `fhir.resources`)
  decide the rest, so a body the document allows is mostly an invalid resource, rightly refused
  with 422.
- the same on `POST /api/v1/cases/{case_id}/actions/{action}`: the body is one of the actions'
  models (`anyOf`), and which one is the path's `action`'s; OpenAPI cannot tie a body's schema
  to a path parameter's value, so a body valid for another action is rightly refused with 422.
- `not_a_server_error` on `POST /api/v1/fhir/notifications`, replaced by a narrower check: the
  stack has no EHR (as in conftest.py), so a notification naming a resource is answered with
  the documented 503 and Retry-After, for the EHR to send it again; any other 5xx still fails.
"""

from __future__ import annotations

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    CHECKS,
    load_all_checks,
    not_a_server_error,
    positive_data_acceptance,
)
from schemathesis.core.parameters import ParameterLocation

from api.main import create_app
from workers.settings import DEV_NOTIFICATION_TOKEN, DEV_PAYER_NOTIFICATION_TOKEN
from workflows.care.models import Role
from workflows.prior_auth.intake import CRD

from .conftest import Stack, new_order

EXAMPLES = 20  # per operation, each sent as every caller: the module runs in about a minute
CALLERS = {
    "admin": ("ada", Role.ADMIN, None),
    "coordinator": ("cora", Role.COORDINATOR, "cardiology"),
    "supervisor": ("sam", Role.SUPERVISOR, "cardiology"),
    "auditor": ("audrey", Role.AUDITOR, None),
}
WEBHOOKS = {
    "/api/v1/fhir/notifications": DEV_NOTIFICATION_TOKEN,
    "/api/v1/payer/notifications": DEV_PAYER_NOTIFICATION_TOKEN,
}
BODY_BEYOND_THE_DOCUMENT = {
    ("POST", "/api/v1/referrals"),
    ("POST", "/api/v1/cases"),
    ("POST", "/api/v1/fhir/notifications"),
    ("POST", "/api/v1/payer/notifications"),
    ("POST", "/api/v1/cases/{case_id}/actions/{action}"),
}

# Answers 503 with Retry-After here, where no EHR answers (see above).
WITHOUT_EHR = "/api/v1/fhir/notifications"

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())


def prior_auth_order() -> dict:
    """An order whose coverage information says it needs prior authorization (Da Vinci CRD)."""
    order = new_order()
    order["extension"] = [
        {
            "url": CRD,
            "extension": [
                {"url": "pa-needed", "valueCode": "auth-needed"},
                {"url": "doc-needed", "valueCode": "admin"},
            ],
        }
    ]
    return order


@pytest.fixture(scope="module")
def real_cases(stack: Stack) -> list[str]:
    """A referral (team cardiology) and a prior authorization (team authorizations)."""
    admin = stack.token("ada", Role.ADMIN)
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        opened = http.post("/api/v1/cases", json=prior_auth_order(), headers=admin)
        assert opened.status_code == 201, opened.text
    ids = sorted(case["case_id"] for case in opened.json()["cases"])
    assert [case_id.split("-")[0] for case_id in ids] == ["priorauth", "referral"]
    return ids


# The document the API serves at /openapi.json, made by the same code as the stack's API process.
schema = schemathesis.openapi.from_dict(create_app().openapi())


def invalid(case: schemathesis.Case, where: ParameterLocation) -> bool:
    """Whether schemathesis made this part of the request invalid on purpose."""
    return case.meta is not None and case.meta.is_negative_at(where)


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_the_api_answers_as_its_document_says(
    case: schemathesis.Case, stack: Stack, real_cases: list[str]
) -> None:
    """Each generated request, sent as each kind of caller."""
    path = case.operation.path
    generated = (case.path_parameters or {}).get("case_id")
    if generated is not None and not invalid(case, ParameterLocation.PATH):
        # Two in three go to a real case; the rest keep the id schemathesis made up.
        choice = sum(map(ord, generated)) % 3
        if choice < len(real_cases):
            case.path_parameters["case_id"] = real_cases[choice]
    if case.query and not invalid(case, ParameterLocation.QUERY):
        # A page token is the API's own (signed); one made up is refused, as test_api shows.
        case.query.pop("page_token", None)
    excluded = []
    if (case.method.upper(), path) in BODY_BEYOND_THE_DOCUMENT:
        excluded.append(positive_data_acceptance)
    if path == WITHOUT_EHR:
        excluded.append(not_a_server_error)

    if path in WEBHOOKS:
        credentials = {"integration": {"Authorization": f"Bearer {WEBHOOKS[path]}"}}
    else:
        credentials = {name: stack.token(*person) for name, person in CALLERS.items()}
    if invalid(case, ParameterLocation.HEADER):
        # Headers made invalid on purpose (a malformed or missing credential among them): sent
        # as they are, not mended by a valid token.
        credentials = {"caller with the headers as generated": {}}
    for caller, headers in credentials.items():
        try:
            response = case.call_and_validate(
                base_url=stack.base_url,
                headers=headers,
                checks=ALL_CHECKS,
                excluded_checks=excluded,
                timeout=30,
            )
        except Exception as failure:
            failure.add_note(f"Sent as the {caller}")
            raise
        if path == WITHOUT_EHR and response.status_code >= 500:
            assert response.status_code == 503 and "retry-after" in response.headers
