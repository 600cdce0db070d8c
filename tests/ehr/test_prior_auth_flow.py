"""Prior authorization end to end, through the real API and worker, against the EHR sandbox and
the payer sandbox: an order placed in the EHR opens its referral and its authorization; the
authorization collects its prerequisites from the EHR, asks the payer over Da Vinci PAS, waits
on a pend until the payer's notification arrives at the webhook, and only then may the referral
be scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import eventually
from workers.demo import IMAGING
from workflows.care.models import Role

from .conftest import EhrStack
from .records import Ehr, new_id

NOW = datetime.now(UTC)
CPT = "http://www.ama-assn.org/go/cpt"
MRI_LUMBAR = "72148"  # the default rules: notes in 30 days, 6 weeks of therapy, coverage


@pytest.fixture
def http(ehr_stack: EhrStack):
    with httpx.Client(base_url=ehr_stack.base_url, timeout=30) as client:
        yield client


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def authorization_order(ehr: Ehr) -> tuple[str, str]:
    """A patient with coverage, a recent note and eight weeks of therapy, and an MRI order for
    them that the rules table says needs authorization."""
    patient = ehr.patient()
    payer, coverage = new_id("payer"), new_id("cov")
    ehr.put({"resourceType": "Organization", "id": payer, "name": "Test Health Plan"})
    ehr.put(
        {
            "resourceType": "Coverage",
            "id": coverage,
            "status": "active",
            "beneficiary": {"reference": patient},
            "payor": [{"reference": f"Organization/{payer}"}],
            "period": {
                "start": ago(100)[:10],
                "end": (NOW + timedelta(days=200)).date().isoformat(),
            },
        }
    )
    ehr.put(
        {
            "resourceType": "DocumentReference",
            "id": new_id("note"),
            "status": "current",
            "subject": {"reference": patient},
            "date": ago(5),
            "content": [{"attachment": {"contentType": "text/plain", "title": "Progress note"}}],
        }
    )
    ehr.put(
        {
            "resourceType": "Procedure",
            "id": new_id("pt"),
            "status": "completed",
            "code": {"text": "Physical therapy"},
            "subject": {"reference": patient},
            "performedPeriod": {"start": ago(70), "end": ago(14)},
        }
    )
    ehr.put({"resourceType": "Practitioner", "id": "dr-pa", "name": [{"family": "Ordering"}]})
    order = ehr.order(
        patient,
        code={"coding": [{"system": CPT, "code": MRI_LUMBAR}], "text": "MRI lumbar spine"},
        category=[IMAGING],
        insurance=[{"reference": f"Coverage/{coverage}"}],
        requester={"reference": "Practitioner/dr-pa"},
    )
    return patient, order


def test_pended_then_approved_by_notification_before_the_referral_is_scheduled(
    http, ehr_stack: EhrStack, payer_sandbox_http: httpx.Client
):
    payer_sandbox_http.put(
        "/sandbox/rules", json=[{"service": MRI_LUMBAR, "action": "A4", "days": 60}]
    ).raise_for_status()
    ehr = Ehr(ehr_stack.ehr_url)
    patient, order = authorization_order(ehr)
    order_id = order.split("/", 1)[1]
    opened = http.post(
        "/api/v1/fhir/notifications", json={"reference": order}, headers=ehr_stack.integration
    )
    assert opened.status_code == 202, opened.text

    admin = ehr_stack.token("ada", Role.ADMIN)
    ian = ehr_stack.token("ian", Role.COORDINATOR, "imaging")
    auth_id, referral_id = f"priorauth-{order_id}", f"referral-{order_id}"

    def stage(case_id: str) -> str:
        return http.get(f"/api/v1/cases/{case_id}", headers=admin).json()["stage"]

    # Every prerequisite is found in the EHR, with evidence; the request goes out and is pended.
    assert eventually(lambda: stage(auth_id) == "pended", timeout=60)
    case = http.get(f"/api/v1/cases/{auth_id}", headers=admin).json()
    assert {item["status"] for item in case["checklist"]} == {"met"}
    assert all(item["evidence"] and item["evidence"][0]["sha256"] for item in case["checklist"])
    [claim] = [c for c in payer_sandbox_http.get("/sandbox/claims").json() if auth_id in str(c)]
    # The case page shows the checklist with its evidence.
    pages = {}
    for role in (Role.SUPERVISOR, Role.COORDINATOR):
        token = ehr_stack.token("sara", role, "authorizations")["Authorization"].split()[1]
        with httpx.Client(base_url=ehr_stack.base_url, cookies={"ft_session": token}) as browser:
            pages[role] = browser.get(f"/cases/{auth_id}").text
    supervisor_page = pages[Role.SUPERVISOR]
    assert 'id="checklist"' in supervisor_page and "Verified" in supervisor_page
    assert "6 weeks of documented conservative therapy" in supervisor_page
    assert "Pended by payer" in supervisor_page
    assert 'id="action-waive-prerequisite"' not in supervisor_page  # nothing to waive when pended
    assert 'id="action-attach-document"' in pages[Role.COORDINATOR]
    # Waiving is for supervisors (the declaration's roles, checked before the case is asked),
    # and only while the request is being put together.
    waive = {"prerequisite": "coverage", "reason": "Verified by phone with the plan"}
    url = f"/api/v1/cases/{auth_id}/actions/waive-prerequisite"
    coordinator = ehr_stack.token("cole", Role.COORDINATOR, "authorizations")
    supervisor = ehr_stack.token("sara", Role.SUPERVISOR, "authorizations")
    assert http.post(url, json=waive, headers=coordinator).status_code == 403
    assert http.post(url, json=waive, headers=supervisor).status_code == 409

    # The referral cannot be scheduled while its authorization is pended.
    assert http.post(f"/api/v1/cases/{referral_id}/actions/assign", json={}, headers=ian).is_success
    start = NOW + timedelta(days=10)
    appointment = ehr.appointment(patient, start, order)
    schedule = {
        "appointment": f"Appointment/{appointment['id']}",
        "appointment_at": start.isoformat(),
    }
    refused = http.post(
        f"/api/v1/cases/{referral_id}/actions/mark-scheduled", json=schedule, headers=ian
    )
    assert refused.status_code == 409
    assert auth_id in refused.json()["detail"]

    # The payer decides; its notification reaches the webhook, and the case is approved.
    identifier = f"{auth_id}-1"
    payer_sandbox_http.post(
        f"/sandbox/claims/{identifier}/decide", json={"action": "A1"}
    ).raise_for_status()
    assert eventually(lambda: stage(auth_id) == "approved", timeout=30), claim
    approved = http.get(f"/api/v1/cases/{auth_id}", headers=admin).json()
    assert approved["references"].get("auth_number")
    assert "authorized_until" in approved["moments"]

    # The referral was told, and now it can be scheduled (verified against the EHR).
    assert eventually(
        lambda: (
            http.get(f"/api/v1/cases/{referral_id}", headers=admin)
            .json()["references"]
            .get("authorization_stage")
            == "approved"
        )
    )
    scheduled = http.post(
        f"/api/v1/cases/{referral_id}/actions/mark-scheduled", json=schedule, headers=ian
    )
    assert scheduled.status_code == 200, scheduled.text
    assert eventually(lambda: stage(referral_id) == "scheduled")


def test_an_order_that_needs_no_authorization_opens_only_its_referral(http, ehr_stack: EhrStack):
    ehr = Ehr(ehr_stack.ehr_url)
    order = ehr.order(ehr.patient(), category=[IMAGING])  # no code the rules table lists
    order_id = order.split("/", 1)[1]
    http.post(
        "/api/v1/fhir/notifications", json={"reference": order}, headers=ehr_stack.integration
    ).raise_for_status()
    admin = ehr_stack.token("ada", Role.ADMIN)
    assert eventually(
        lambda: http.get(f"/api/v1/cases/referral-{order_id}", headers=admin).status_code == 200
    )
    assert http.get(f"/api/v1/cases/priorauth-{order_id}", headers=admin).status_code == 404


def test_a_visit_booked_in_the_ehr_before_approval_is_flagged(
    http, ehr_stack: EhrStack, payer_sandbox_http: httpx.Client
):
    payer_sandbox_http.put(
        "/sandbox/rules", json=[{"service": MRI_LUMBAR, "action": "A4", "days": 60}]
    ).raise_for_status()
    ehr = Ehr(ehr_stack.ehr_url)
    patient, order = authorization_order(ehr)
    order_id = order.split("/", 1)[1]
    notify = {"headers": ehr_stack.integration}
    http.post("/api/v1/fhir/notifications", json={"reference": order}, **notify)
    admin = ehr_stack.token("ada", Role.ADMIN)
    auth_id, referral_id = f"priorauth-{order_id}", f"referral-{order_id}"

    def case(case_id: str) -> dict:
        return http.get(f"/api/v1/cases/{case_id}", headers=admin).json()

    assert eventually(lambda: case(auth_id)["stage"] == "pended", timeout=60)
    # Someone books the visit in the EHR itself: the booking stands, and the referral says that
    # its authorization has no decision yet (a pend is no decision; the referral hears of those).
    booked = ehr.appointment(patient, NOW + timedelta(days=9), order)
    http.post(
        "/api/v1/fhir/notifications", json={"reference": f"Appointment/{booked['id']}"}, **notify
    ).raise_for_status()
    assert eventually(lambda: case(referral_id)["stage"] == "scheduled", timeout=30)
    flagged = [e for e in case(referral_id)["timeline"] if e["kind"] == "exception_raised"]
    assert [e["details"]["authorization"] for e in flagged] == [auth_id]
    assert flagged[0]["summary"] == (
        f"Booked in the EHR while prior authorization {auth_id} has no decision yet"
    )
