"""Synthetic demo data for `make run`: an EHR with patients, orders, appointments and a report,
whose notifications open the demo cases, and a few care-team actions on top; orders that need
prior authorization, with a payer that approves one, denies one and pends one (deciding it a
little later), and one still missing a prerequisite.

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


ORG_REF = {"reference": "Organization/demo-org"}
CPT = "http://www.ama-assn.org/go/cpt"
CRD = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"


def authorization_order(
    order_id: str, patient: str, code: str, display: str, *, crd: bool = False
) -> dict:
    """An imaging order that needs prior authorization: by the rules table for its CPT code, or,
    with `crd`, because the order says so (Da Vinci CRD coverage information)."""
    order = service_request(order_id, patient, display, IMAGING)
    order["code"] = {"coding": [{"system": CPT, "code": code, "display": display}], "text": display}
    coverage = {"reference": f"Coverage/demo-cov-{patient}"}
    order["insurance"] = [coverage]
    if crd:
        order["extension"] = [
            {
                "url": CRD,
                "extension": [
                    {"url": "coverage", "valueReference": coverage},
                    {"url": "covered", "valueCode": "covered"},
                    {"url": "pa-needed", "valueCode": "auth-needed"},
                    {"url": "doc-needed", "valueCode": "clinical"},
                    {"url": "date", "valueDate": datetime.now(UTC).date().isoformat()},
                ],
            }
        ]
    return order


# Each decided as the payer sandbox is told in PAYER_RULES below.
AUTHORIZATION_ORDERS = [
    authorization_order("demo-pa-001", "demo-p4", "72148", "MRI lumbar spine without contrast"),
    authorization_order("demo-pa-002", "demo-p1", "74177", "CT abdomen and pelvis with contrast"),
    authorization_order("demo-pa-003", "demo-p3", "73721", "MRI knee without contrast", crd=True),
    # No conservative therapy on file: its checklist waits for it.
    authorization_order("demo-pa-004", "demo-p5", "72148", "MRI lumbar spine without contrast"),
]
PAYER_RULES = [
    {"service": "72148", "action": "A1", "days": 60},
    {
        "service": "74177",
        "action": "A3",
        "reason": {"code": "NMN", "display": "Not medically necessary"},
    },
    {"service": "73721", "action": "A4", "then": "A1", "after_seconds": 90, "days": 90},
]


def contacts(n: int, given: str, family: str) -> list[dict]:
    """A mobile number for all but the sixth person, an email address for three of them: so
    the demo's messages go by text, by email and, for nobody reachable, to the portal."""
    telecom = []
    if n != 6:
        telecom.append({"system": "phone", "value": f"+1 555 010 {n:04d}", "use": "mobile"})
    if n in (2, 3, 6):
        email = f"{given}.{family}@example.org".lower()
        telecom.append({"system": "email", "value": email, "use": "home"})
    return telecom


def demo_records(now: datetime) -> list[dict]:
    """The synthetic EHR behind the demo: people, places, and what already happened there."""
    made_up = [
        ("Alma", "Ashby", "1948-02-11", "en", "English"),
        ("Bruno", "Brook", "1961-07-30", "es", "Spanish"),
        ("Cleo", "Calder", "1975-12-02", "en", "English"),
        ("Dario", "Dunmore", "1953-05-19", "pt", "Portuguese"),
        ("Edith", "Ellery", "1939-09-23", "en", "English"),
        ("Farah", "Fenwick", "1982-04-06", "ar", "Arabic"),
    ]
    people = [
        {
            "resourceType": "Patient",
            "id": f"demo-p{n}",
            "name": [{"use": "official", "given": [given], "family": family}],
            "birthDate": born,
            "telecom": contacts(n, given, family),
            "communication": [
                {"language": {"coding": [{"code": code, "display": language}]}, "preferred": True}
            ],
        }
        for n, (given, family, born, code, language) in enumerate(made_up, 1)
    ]
    places = [
        {"resourceType": "Location", "id": lid, "name": name, "managingOrganization": ORG_REF}
        for lid, name in [("main-clinic", "Main clinic"), ("north-clinic", "North clinic")]
    ]

    def appointment(aid: str, order: str, patient: str, start: datetime, status: str) -> dict:
        return {
            "resourceType": "Appointment",
            "id": aid,
            "status": status,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "basedOn": [{"reference": f"ServiceRequest/{order}"}],
            "participant": [
                {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/dr-demo"}, "status": "accepted"},
            ],
        }

    def days_ago(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    def coverage(patient: str) -> dict:
        return {
            "resourceType": "Coverage",
            "id": f"demo-cov-{patient}",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{patient}"},
            "payor": [{"reference": "Organization/demo-payer"}],
            "period": {
                "start": days_ago(300)[:10],
                "end": (now + timedelta(days=300)).date().isoformat(),
            },
        }

    def note(nid: str, patient: str, age_days: float) -> dict:
        return {
            "resourceType": "DocumentReference",
            "id": nid,
            "status": "current",
            "type": {"text": "Progress note"},
            "subject": {"reference": f"Patient/{patient}"},
            "date": days_ago(age_days),
            "content": [{"attachment": {"contentType": "text/plain", "title": "Progress note"}}],
        }

    authorization_records = [
        {"resourceType": "Organization", "id": "demo-payer", "name": "Lakeside Health Plan (demo)"},
        *(coverage(p) for p in ("demo-p1", "demo-p3", "demo-p4", "demo-p5")),
        note("demo-note-p4", "demo-p4", 10),
        note("demo-note-p3", "demo-p3", 3),
        note("demo-note-p5", "demo-p5", 6),
        {
            "resourceType": "Procedure",
            "id": "demo-pt-p4",
            "status": "completed",
            "code": {"text": "Physical therapy"},
            "subject": {"reference": "Patient/demo-p4"},
            "performedPeriod": {"start": days_ago(70), "end": days_ago(14)},
        },
        {
            "resourceType": "Observation",
            "id": "demo-creatinine-p1",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
            "subject": {"reference": "Patient/demo-p1"},
            "effectiveDateTime": days_ago(5),
            "valueQuantity": {"value": 0.9, "unit": "mg/dL"},
        },
    ]

    return [
        {"resourceType": "Organization", "id": "demo-org", "name": "Riverside Health (demo)"},
        {"resourceType": "Practitioner", "id": "dr-demo", "name": [{"family": "Demo"}]},
        *people,
        *places,
        *authorization_records,
        *DEMO_ORDERS,
        *AUTHORIZATION_ORDERS,
        # Booked by the care team; they will mark it scheduled in Followthrough.
        appointment("demo-a1", "demo-card-002", "demo-p2", now + timedelta(days=6), "booked"),
        # Booked directly in the EHR: the case notices by itself.
        appointment("demo-a2", "demo-img-002", "demo-p5", now + timedelta(days=3), "booked"),
        # Seen earlier today, report filed: the case closes by itself.
        appointment("demo-a3", "demo-img-003", "demo-p6", now - timedelta(hours=1), "fulfilled"),
        {
            "resourceType": "DiagnosticReport",
            "id": "demo-r3",
            "status": "final",
            "code": {"text": "Ultrasound report"},
            "subject": {"reference": "Patient/demo-p6"},
            "basedOn": [{"reference": "ServiceRequest/demo-img-003"}],
        },
    ]


def seed_ehr(settings: Settings, now: datetime) -> list[dict]:
    """Write the demo records into the EHR as one transaction (PUT: idempotent)."""
    records = demo_records(now)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": record,
                "request": {"method": "PUT", "url": f"{record['resourceType']}/{record['id']}"},
            }
            for record in records
        ],
    }
    headers = {"content-type": "application/fhir+json"}
    response = httpx.post(settings.fhir_base_url, json=bundle, headers=headers, timeout=30)
    response.raise_for_status()
    failed = [e for e in response.json()["entry"] if not e["response"]["status"].startswith("2")]
    if failed:
        raise RuntimeError(f"The EHR refused {len(failed)} demo records")
    return records


def seed_demo(base_url: str, settings: Settings) -> int:
    """Fill the EHR, let its notifications open the cases, then act as the care team would."""
    if settings.payer_base_url:  # how the payer sandbox decides the demo's requests
        sandbox = settings.payer_base_url.removesuffix("/fhir")
        httpx.put(f"{sandbox}/sandbox/rules", json=PAYER_RULES, timeout=30).raise_for_status()
    records = seed_ehr(settings, datetime.now(UTC))
    ehr = {"Authorization": f"Bearer {settings.fhir_notification_token}"}
    cora = {
        "Authorization": "Bearer "
        + mint_token(settings, user="cora", role=Role.COORDINATOR, team="cardiology")
    }
    ian = {
        "Authorization": "Bearer "
        + mint_token(settings, user="ian", role=Role.COORDINATOR, team="imaging")
    }
    with httpx.Client(base_url=base_url, timeout=30) as http:
        # What the EHR would push: each order, then what happened to it there.
        for kind in ("ServiceRequest", "Appointment", "DiagnosticReport"):
            for record in records:
                if record["resourceType"] == kind and record["id"] != "demo-a1":
                    reference = {"reference": f"{kind}/{record['id']}"}
                    http.post(
                        "/api/v1/fhir/notifications", json=reference, headers=ehr
                    ).raise_for_status()

        def act(case: str, action: str, headers: dict, **body: object) -> None:
            http.post(
                f"/api/v1/cases/{case}/actions/{action}", json=body, headers=headers
            ).raise_for_status()

        a1 = next(record for record in records if record["id"] == "demo-a1")
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
            appointment_at=a1["start"],
        )
        act("referral-demo-img-001", "assign", ian)
        act("referral-demo-img-001", "add-note", ian, text="Patient prefers afternoon slots")
    return len(DEMO_ORDERS) + 2 * len(AUTHORIZATION_ORDERS)  # a referral and its authorization
