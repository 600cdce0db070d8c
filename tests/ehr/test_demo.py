"""`make run`'s demo: the cases open from the EHR's own data, and what happened there shows."""

from __future__ import annotations

import httpx

from tests.conftest import eventually
from workers.demo import seed_demo
from workflows.care.models import Role

from .conftest import NOTIFY_TOKEN, EhrStack


def test_demo_cases_open_from_the_ehr(ehr_stack: EhrStack, payer_sandbox_http: httpx.Client):
    settings = ehr_stack.settings.model_copy(
        update={"fhir_base_url": ehr_stack.ehr_url, "fhir_notification_token": NOTIFY_TOKEN}
    )
    assert seed_demo(ehr_stack.base_url, settings) == 14  # 6 referrals, 4 with authorizations
    admin = ehr_stack.token("ada", Role.ADMIN)
    with httpx.Client(base_url=ehr_stack.base_url, headers=admin, timeout=30) as http:

        def stage(case_id: str) -> str:
            return http.get(f"/api/v1/cases/{case_id}").json()["stage"]

        assert stage("referral-demo-card-001") == "awaiting_scheduling"
        assert stage("referral-demo-card-002") == "scheduled"  # verified against demo-a1
        assert eventually(lambda: stage("referral-demo-img-002") == "scheduled")  # booked in EHR
        assert eventually(lambda: stage("referral-demo-img-003") == "completed")  # report filed
        done = http.get("/api/v1/cases/referral-demo-img-003").json()
        assert done["references"]["report"] == "DiagnosticReport/demo-r3"

        # The orders that need authorization: one approved, one denied, one pended (the payer
        # decides it later; told to now), one still missing its conservative therapy.
        assert eventually(lambda: stage("priorauth-demo-pa-001") == "approved", timeout=60)
        assert eventually(lambda: stage("priorauth-demo-pa-002") == "denied", timeout=60)
        denied = http.get("/api/v1/cases/priorauth-demo-pa-002").json()
        assert "Not medically necessary" in denied["references"]["denial_reason"]
        assert eventually(lambda: stage("priorauth-demo-pa-003") == "pended", timeout=60)
        payer_sandbox_http.post(
            "/sandbox/claims/priorauth-demo-pa-003-1/decide", json={"action": "A1"}
        ).raise_for_status()
        assert eventually(lambda: stage("priorauth-demo-pa-003") == "approved", timeout=30)
        waiting = http.get("/api/v1/cases/priorauth-demo-pa-004").json()
        assert waiting["stage"] == "collecting"
        assert eventually(
            lambda: (
                {
                    item["name"]: item["status"]
                    for item in http.get("/api/v1/cases/priorauth-demo-pa-004").json()["checklist"]
                }
                == {"clinical_notes": "met", "conservative_therapy": "open", "coverage": "met"}
            ),
            timeout=30,
        )
        referral = http.get("/api/v1/cases/referral-demo-pa-004").json()
        assert referral["references"]["authorization"] == "priorauth-demo-pa-004"
