"""The EHR sandbox is a real FHIR R4 engine: validation, search, versions, bundles, persistence."""

from __future__ import annotations

import uuid

import httpx
import pytest

from workers import dev, ehr_sandbox

FHIR_JSON = {"content-type": "application/fhir+json"}


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": "Synthetic"}]}


@pytest.fixture
def fhir(ehr_url: str):
    with httpx.Client(base_url=ehr_url, headers=FHIR_JSON, timeout=10) as client:
        yield client


def test_create_read_update_history(fhir: httpx.Client):
    pid = f"p-{uuid.uuid4().hex[:8]}"
    first = fhir.put(f"/Patient/{pid}", json=patient(pid))
    assert first.status_code in (200, 201), first.text
    version = first.json()["meta"]["versionId"]
    assert first.headers["etag"] == f'W/"{version}"'

    changed = patient(pid) | {"gender": "female"}
    second = fhir.put(f"/Patient/{pid}", json=changed, headers={"if-match": f'W/"{version}"'})
    assert second.status_code == 200
    stale = fhir.put(f"/Patient/{pid}", json=changed, headers={"if-match": f'W/"{version}"'})
    assert stale.status_code == 412

    history = fhir.get(f"/Patient/{pid}/_history").json()
    versions = [entry["resource"]["meta"]["versionId"] for entry in history["entry"]]
    assert versions == [second.json()["meta"]["versionId"], version]  # newest first
    assert fhir.get(f"/Patient/{pid}/_history/{version}").json().get("gender") is None


def test_invalid_resource_is_refused_with_an_operation_outcome(fhir: httpx.Client):
    response = fhir.post("/ServiceRequest", json={"resourceType": "ServiceRequest"})
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert {issue["expression"][0] for issue in outcome["issue"]} >= {
        "ServiceRequest.intent",
        "ServiceRequest.status",
    }


def test_search_with_standard_parameters_and_pages(fhir: httpx.Client):
    pid = f"p-{uuid.uuid4().hex[:8]}"
    fhir.put(f"/Patient/{pid}", json=patient(pid)).raise_for_status()
    for status in ("active", "active", "active", "revoked"):
        fhir.post(
            "/ServiceRequest",
            json={
                "resourceType": "ServiceRequest",
                "status": status,
                "intent": "order",
                "subject": {"reference": f"Patient/{pid}"},
            },
        ).raise_for_status()
    page = fhir.get(
        "/ServiceRequest",
        params={"subject": f"Patient/{pid}", "status": "active", "_count": 2},
    ).json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = fhir.get(following).json()
    assert len(rest["entry"]) == 1
    later = fhir.get(
        "/ServiceRequest", params={"subject": f"Patient/{pid}", "_lastUpdated": "gt2999-01-01"}
    )
    assert later.json()["total"] == 0


def test_transaction_bundle_resolves_references(fhir: httpx.Client):
    temp = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": temp,
                "resource": {"resourceType": "Patient", "name": [{"family": "Synthetic"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": temp},
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [entry["response"]["status"] for entry in entries] == ["201", "201"]
    patient_id = entries[0]["resource"]["id"]
    assert entries[1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


def test_data_survives_a_restart(tmp_path):
    port = dev.free_port()
    server = ehr_sandbox.start_ehr_sandbox(port, tmp_path / "data", tmp_path / "ehr.log")
    try:
        url = ehr_sandbox.wait_for_ehr_sandbox(port, server)
        written = httpx.put(f"{url}/Patient/kept", json=patient("kept"), headers=FHIR_JSON).json()
    finally:
        dev.stop(server)
    server = ehr_sandbox.start_ehr_sandbox(port, tmp_path / "data", tmp_path / "ehr.log")
    try:
        url = ehr_sandbox.wait_for_ehr_sandbox(port, server)
        assert httpx.get(f"{url}/Patient/kept").json()["meta"] == written["meta"]
    finally:
        dev.stop(server)
