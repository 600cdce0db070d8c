"""Synthetic EHR records for the tests: made-up patients, orders, appointments and reports."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

FHIR_JSON = {"content-type": "application/fhir+json"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Ehr:
    """Writes straight to the sandbox, as the EHR's own users would."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers=FHIR_JSON, timeout=10)

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.http.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def read(self, reference: str) -> dict[str, Any]:
        response = self.http.get(f"/{reference}")
        response.raise_for_status()
        return response.json()

    def patient(self) -> str:
        pid = new_id("pat")
        self.put({"resourceType": "Patient", "id": pid, "name": [{"family": "Synthetic"}]})
        return f"Patient/{pid}"

    def order(self, patient: str, status: str = "active", **extra: Any) -> str:
        oid = new_id("sr")
        self.put(
            {
                "resourceType": "ServiceRequest",
                "id": oid,
                "status": status,
                "intent": "order",
                "subject": {"reference": patient},
                "code": {"text": "Cardiology consult"},
                **extra,
            }
        )
        return f"ServiceRequest/{oid}"

    def appointment(
        self,
        patient: str,
        start: datetime,
        order: str | None = None,
        status: str = "booked",
    ) -> dict[str, Any]:
        resource = {
            "resourceType": "Appointment",
            "id": new_id("appt"),
            "status": status,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "participant": [{"actor": {"reference": patient}, "status": "accepted"}],
        }
        if order:
            resource["basedOn"] = [{"reference": order}]
        return self.put(resource)

    def diagnostic_report(self, patient: str, order: str, status: str = "final") -> dict[str, Any]:
        return self.put(
            {
                "resourceType": "DiagnosticReport",
                "id": new_id("dr"),
                "status": status,
                "code": {"text": "Consult note"},
                "subject": {"reference": patient},
                "basedOn": [{"reference": order}],
            }
        )

    def document(self, patient: str, order: str | None = None, status: str = "current") -> dict:
        resource: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "id": new_id("doc"),
            "status": status,
            "subject": {"reference": patient},
            "content": [{"attachment": {"contentType": "text/plain", "title": "Referral letter"}}],
        }
        if order:
            resource["context"] = {"related": [{"reference": order}]}
        return self.put(resource)
