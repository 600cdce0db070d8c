"""Synthetic demo cases for `make run`: referral and imaging orders in a few stages.

All names and ids here are made up; no real patient data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from api.auth import mint_token
from workers.settings import Settings
from workflows.care.models import Role

CARDIOLOGY = {
    "coding": [{"system": "http://snomed.info/sct", "code": "394579002", "display": "Cardiology"}]
}
IMAGING = {
    "coding": [{"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}]
}


def service_request(
    order_id: str,
    patient: str,
    service: str,
    category: dict,
    *,
    priority: str = "routine",
    location: str = "main-clinic",
) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": order_id,
        "status": "active",
        "intent": "order",
        "priority": priority,
        "category": [category],
        "code": {"text": service},
        "subject": {"reference": f"Patient/{patient}"},
        "requester": {"reference": "Practitioner/dr-demo"},
        "locationReference": [{"reference": f"Location/{location}"}],
        "authoredOn": datetime.now(UTC).isoformat(),
    }


DEMO_ORDERS = [
    service_request("demo-card-001", "demo-p1", "Cardiology consult", CARDIOLOGY),
    service_request(
        "demo-card-002", "demo-p2", "Echocardiogram review", CARDIOLOGY, priority="urgent"
    ),
    service_request(
        "demo-card-003", "demo-p3", "Cardiology consult", CARDIOLOGY, location="north-clinic"
    ),
    service_request("demo-img-001", "demo-p4", "MRI lumbar spine", IMAGING),
    service_request("demo-img-002", "demo-p5", "CT chest", IMAGING, priority="asap"),
    service_request(
        "demo-img-003", "demo-p6", "Ultrasound abdomen", IMAGING, location="north-clinic"
    ),
]


def seed_demo(base_url: str, settings: Settings) -> int:
    admin = {"Authorization": f"Bearer {mint_token(settings, user='demo-admin', role=Role.ADMIN)}"}
    cora = {
        "Authorization": "Bearer "
        + mint_token(settings, user="cora", role=Role.COORDINATOR, team="cardiology")
    }
    ian = {
        "Authorization": "Bearer "
        + mint_token(settings, user="ian", role=Role.COORDINATOR, team="imaging")
    }
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for order in DEMO_ORDERS:
            http.post("/api/v1/referrals", json=order, headers=admin).raise_for_status()

        def act(case: str, action: str, headers: dict, **body: object) -> None:
            http.post(
                f"/api/v1/cases/{case}/actions/{action}", json=body, headers=headers
            ).raise_for_status()

        soon = (datetime.now(UTC) + timedelta(days=6)).isoformat()
        act("referral-demo-card-001", "assign", cora)
        act(
            "referral-demo-card-001",
            "record-outreach",
            cora,
            channel="phone",
            outcome="left_message",
        )
        act("referral-demo-card-002", "assign", cora)
        act(
            "referral-demo-card-002",
            "mark-scheduled",
            cora,
            appointment="Appointment/demo-a1",
            appointment_at=soon,
        )
        act("referral-demo-img-001", "assign", ian)
        act("referral-demo-img-001", "add-note", ian, text="Patient prefers afternoon slots")
    return len(DEMO_ORDERS)
