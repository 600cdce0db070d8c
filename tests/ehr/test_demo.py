"""`make run`'s demo: the cases open from the EHR's own data, and what happened there shows."""

from __future__ import annotations

import httpx

from tests.conftest import eventually
from workers.demo import seed_demo
from workflows.care.models import Role

from .conftest import NOTIFY_TOKEN, EhrStack


def test_demo_cases_open_from_the_ehr(ehr_stack: EhrStack):
    settings = ehr_stack.settings.model_copy(
        update={"fhir_base_url": ehr_stack.ehr_url, "fhir_notification_token": NOTIFY_TOKEN}
    )
    assert seed_demo(ehr_stack.base_url, settings) == 6
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
