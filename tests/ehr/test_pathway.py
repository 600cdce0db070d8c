"""Referral cases against the EHR sandbox, through the real API and worker: claims verified with
evidence or sent back as rework, the case mirrored as a Task, and changes made in the EHR itself
(an appointment booked there, an order revoked) moving the case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import eventually
from workers.demo import CARDIOLOGY, service_request
from workflows.care.models import Role

from .conftest import EhrStack
from .records import Ehr

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def http(ehr_stack: EhrStack):
    with httpx.Client(base_url=ehr_stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def cora(ehr_stack: EhrStack) -> dict[str, str]:
    return ehr_stack.token("cora", Role.COORDINATOR, "cardiology")


def category(code: str | None = None) -> list[dict]:
    return [CARDIOLOGY, {"coding": [{"system": "urn:test", "code": code or uuid.uuid4().hex}]}]


def open_from_ehr(http, stack: EhrStack, ehr: Ehr) -> tuple[str, str, str]:
    """An order placed in the EHR, notified: its case opens at once."""
    patient = ehr.patient()
    order = ehr.order(patient, category=category())
    response = http.post(
        "/api/v1/fhir/notifications", json={"reference": order}, headers=stack.integration
    )
    assert response.status_code == 202, response.text
    [taken] = response.json()["results"]
    assert taken["outcome"] == "opened"
    return taken["case_ids"][0], patient, order


def act(http, case_id: str, action: str, headers: dict, **body) -> dict:
    response = http.post(f"/api/v1/cases/{case_id}/actions/{action}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def case(http, case_id: str, headers: dict) -> dict:
    return http.get(f"/api/v1/cases/{case_id}", headers=headers).json()


def task_of(ehr: Ehr, http, case_id: str, headers: dict, status: str) -> dict | None:
    reference = case(http, case_id, headers)["references"].get("task")
    task = ehr.read(reference) if reference else None
    return task if task and task["status"] == status else None


def test_a_booked_appointment_verifies_scheduling(http, ehr_stack, ehr, cora):
    case_id, patient, order = open_from_ehr(http, ehr_stack, ehr)
    act(http, case_id, "assign", cora)
    appointment = ehr.appointment(patient, NOW + timedelta(days=4), order)
    scheduled = act(
        http,
        case_id,
        "mark-scheduled",
        cora,
        appointment=f"Appointment/{appointment['id']}",
        appointment_at=appointment["start"],
    )
    assert scheduled["stage"] == "scheduled"
    verified = next(e for e in scheduled["timeline"] if e["kind"] == "verified")
    [evidence] = verified["evidence"]
    assert evidence["reference"] == f"Appointment/{appointment['id']}"
    assert evidence["version_id"] == appointment["meta"]["versionId"]
    assert len(evidence["sha256"]) == 64
    task = eventually(lambda: task_of(ehr, http, case_id, cora, "in-progress"))
    assert task, "the case's Task shows it scheduled"
    assert task["focus"]["reference"] == order and task["for"]["reference"] == patient
    assert task["owner"]["identifier"]["value"] == "cora"


def last(case: dict, kind: str) -> dict:
    """The case's newest event of a kind (its outreach records events of its own meanwhile)."""
    return [event for event in case["timeline"] if event["kind"] == kind][-1]


def test_a_cancelled_appointment_is_rework(http, ehr_stack, ehr, cora):
    case_id, patient, order = open_from_ehr(http, ehr_stack, ehr)
    act(http, case_id, "assign", cora)
    cancelled = ehr.appointment(patient, NOW + timedelta(days=4), order, status="cancelled")
    name = f"Appointment/{cancelled['id']}"
    answer = act(
        http, case_id, "mark-scheduled", cora, appointment=name, appointment_at=cancelled["start"]
    )
    assert answer["stage"] == "awaiting_scheduling"
    assert answer["counters"]["rework"] == 1
    rework = last(answer, "rework")
    assert rework["kind"] == "rework" and f"{name} is cancelled" in rework["summary"]


def test_completion_needs_a_report_on_file(http, ehr_stack, ehr, cora):
    case_id, patient, order = open_from_ehr(http, ehr_stack, ehr)
    act(http, case_id, "assign", cora)
    visit = ehr.appointment(patient, NOW + timedelta(days=1), order)
    act(
        http,
        case_id,
        "mark-scheduled",
        cora,
        appointment=f"Appointment/{visit['id']}",
        appointment_at=visit["start"],
    )
    missing = act(http, case_id, "mark-completed", cora, report="DiagnosticReport/not-yet")
    assert missing["stage"] == "scheduled" and missing["counters"]["rework"] == 1
    assert "DiagnosticReport/not-yet is not in the EHR" in last(missing, "rework")["summary"]

    report = ehr.diagnostic_report(patient, order)
    done = act(http, case_id, "mark-completed", cora, report=f"DiagnosticReport/{report['id']}")
    assert done["stage"] == "completed"
    completed = last(done, "completed")
    assert completed["evidence"][0]["reference"] == f"DiagnosticReport/{report['id']}"
    assert eventually(lambda: task_of(ehr, http, case_id, cora, "completed"))


def test_documents_received_must_be_on_file_current_and_the_patients(http, ehr_stack, ehr, cora):
    case_id, patient, order = open_from_ehr(http, ehr_stack, ehr)
    letter = f"DocumentReference/{ehr.document(patient, order)['id']}"
    stranger = f"DocumentReference/{ehr.document(ehr.patient())['id']}"
    superseded = f"DocumentReference/{ehr.document(patient, status='superseded')['id']}"

    refused = act(http, case_id, "record-documents", cora, documents=[letter, stranger, superseded])
    assert refused["counters"]["rework"] == 1 and "documents" not in refused["references"]
    reason = last(refused, "rework")["summary"]
    assert f"{stranger} is not for this case's patient" in reason
    assert f"{superseded} is superseded" in reason and letter not in reason.split("Back to")[0]

    received = act(http, case_id, "record-documents", cora, documents=[letter])
    event = last(received, "documents_received")
    assert event["actor"] == "cora"
    [evidence] = event["evidence"]
    assert evidence["reference"] == letter and len(evidence["sha256"]) == 64
    assert received["references"]["documents"] == letter
    assert received["stage"] == "unassigned"  # documents do not move the referral on


def test_an_appointment_booked_in_the_ehr_moves_the_case(http, ehr_stack, ehr, cora):
    case_id, patient, order = open_from_ehr(http, ehr_stack, ehr)
    appointment = ehr.appointment(patient, NOW + timedelta(days=6), order)
    name = f"Appointment/{appointment['id']}"
    response = http.post(
        "/api/v1/fhir/notifications", json={"reference": name}, headers=ehr_stack.integration
    )
    assert response.json()["results"][0] == {
        "resource": name,
        "outcome": "signalled",
        "case_ids": [case_id],
        "problem": None,
    }
    moved = eventually(lambda: (c := case(http, case_id, cora))["stage"] == "scheduled" and c)
    assert moved, "the case is scheduled without anyone marking it"
    assert moved["references"]["appointment"] == name
    [claim] = [e for e in moved["timeline"] if e.get("stage_after") == "scheduled"]
    assert claim["actor"] == "system" and claim["evidence"][0]["reference"] == name


def test_notifications_are_authenticated_and_validated(http, ehr_stack, ehr):
    order = ehr.order(ehr.patient())
    assert http.post("/api/v1/fhir/notifications", json={"reference": order}).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (
        http.post("/api/v1/fhir/notifications", json={"reference": order}, headers=wrong)
    ).status_code == 401

    bad = {"resourceType": "Bundle", "type": "history", "entry": "nope", "total": "many"}
    invalid = http.post("/api/v1/fhir/notifications", json=bad, headers=ehr_stack.integration)
    assert invalid.status_code == 422
    assert {tuple(e["loc"]) for e in invalid.json()["errors"]} == {("entry",), ("total",)}

    orphan = ehr.order("Patient/nobody-here", category=category())
    response = http.post(
        "/api/v1/fhir/notifications", json={"reference": orphan}, headers=ehr_stack.integration
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"Invalid request: Patient/nobody-here named by {orphan} does not exist in the EHR"
    )


def test_a_notification_bundle_opens_once_and_then_signals(http, ehr_stack, ehr):
    order = ehr.order(ehr.patient(), category=category())
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {
                "fullUrl": "urn:uuid:5a1d2c3e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "active",
                    "type": "event-notification",
                    "subscription": {"reference": "Subscription/orders"},
                },
            },
            {"fullUrl": f"{ehr_stack.ehr_url}/{order}"},
        ],
    }
    first = http.post("/api/v1/fhir/notifications", json=bundle, headers=ehr_stack.integration)
    again = http.post("/api/v1/fhir/notifications", json=bundle, headers=ehr_stack.integration)
    assert first.json()["results"][0]["outcome"] == "opened"
    assert again.json()["results"][0]["outcome"] == "signalled"
    assert again.json()["results"][0]["case_ids"] == first.json()["results"][0]["case_ids"]


def test_an_order_for_a_patient_the_ehr_lacks_is_refused(http, ehr_stack, ehr):
    admin = ehr_stack.token("ada", Role.ADMIN)
    known = ehr.patient().split("/")[1]
    order = service_request(f"api-{uuid.uuid4().hex[:8]}", known, "Consult", CARDIOLOGY)
    opened = http.post("/api/v1/referrals", json=order, headers=admin)
    assert opened.status_code == 201, opened.text
    assert opened.json()["stage"] == "unassigned" and not opened.json()["closed"]

    stranger = service_request(f"api-{uuid.uuid4().hex[:8]}", "nobody", "Consult", CARDIOLOGY)
    refused = http.post("/api/v1/referrals", json=stranger, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["msg"] == "Patient/nobody does not exist in the EHR"
