"""Verification against the real sandbox: each outcome, and evidence hashes per resource version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.fhir.client import FhirClient
from activities.fhir.evidence import EvidenceActivities, canonical_json, evidence_of
from activities.fhir.models import AppointmentCheck, DocumentsCheck, ReportCheck

from .records import Ehr

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
async def verify(ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    yield EvidenceActivities(client)
    await client.aclose()


def booked(order: str, patient: str, appointment: str | None = None) -> AppointmentCheck:
    return AppointmentCheck(order=order, patient=patient, appointment=appointment, not_before=TODAY)


async def test_a_booked_appointment_for_the_order_is_evidence(ehr: Ehr, verify):
    patient = ehr.patient()
    order = ehr.order(patient)
    appointment = ehr.appointment(patient, NOW + timedelta(days=3), order)
    verdict = await verify.appointment_booked(
        booked(order, patient, f"Appointment/{appointment['id']}")
    )
    assert verdict.verified, verdict.reason
    [evidence] = verdict.evidence
    assert (evidence.reference, evidence.version_id) == (
        f"Appointment/{appointment['id']}",
        appointment["meta"]["versionId"],
    )
    assert verdict.appointment_at == datetime.fromisoformat(appointment["start"])


async def test_an_appointment_booked_in_the_ehr_is_found_by_its_order(ehr: Ehr, verify):
    patient = ehr.patient()
    order = ehr.order(patient)
    ehr.appointment(patient, NOW + timedelta(days=9), order)
    soonest = ehr.appointment(patient, NOW + timedelta(days=2), order)
    ehr.appointment(patient, NOW + timedelta(days=1), order, status="cancelled")
    verdict = await verify.appointment_booked(booked(order, patient))
    assert verdict.verified and verdict.evidence[0].reference == f"Appointment/{soonest['id']}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "cancelled"}, "is cancelled"),
        ({"days": -3}, "before today"),
        ({"other_patient": True}, "not for this case's patient"),
        ({"other_order": True}, "is for another order"),
    ],
)
async def test_appointments_that_do_not_count(ehr: Ehr, verify, change, reason):
    patient = ehr.patient()
    order = ehr.order(patient)
    who = ehr.patient() if change.get("other_patient") else patient
    linked = ehr.order(patient) if change.get("other_order") else order
    appointment = ehr.appointment(
        who,
        NOW + timedelta(days=change.get("days", 2)),
        linked,
        status=change.get("status", "booked"),
    )
    name = f"Appointment/{appointment['id']}"
    verdict = await verify.appointment_booked(booked(order, patient, name))
    assert not verdict.verified
    assert verdict.reason == f"{name} {reason}" or reason in verdict.reason


async def test_an_appointment_not_in_the_ehr(ehr: Ehr, verify):
    patient = ehr.patient()
    order = ehr.order(patient)
    verdict = await verify.appointment_booked(booked(order, patient, "Appointment/nowhere"))
    assert (verdict.verified, verdict.reason) == (False, "Appointment/nowhere is not in the EHR")
    nothing = await verify.appointment_booked(booked(order, patient))
    assert nothing.reason == f"No booked appointment for {order}"


async def test_completed_needs_a_filed_report_or_a_completed_order(ehr: Ehr, verify):
    patient = ehr.patient()
    order = ehr.order(patient)
    none = await verify.report_filed(ReportCheck(order=order, patient=patient))
    assert not none.verified and "No report on file" in none.reason

    draft = ehr.diagnostic_report(patient, order, status="preliminary")
    named = await verify.report_filed(
        ReportCheck(order=order, patient=patient, report=f"DiagnosticReport/{draft['id']}")
    )
    assert named.reason == f"DiagnosticReport/{draft['id']} is preliminary, not final"

    final = ehr.diagnostic_report(patient, order)
    found = await verify.report_filed(ReportCheck(order=order, patient=patient))
    assert found.verified
    assert [e.reference for e in found.evidence] == [f"DiagnosticReport/{final['id']}"]

    letter = ehr.document(patient, order)
    by_document = await verify.report_filed(
        ReportCheck(order=order, patient=patient, report=f"DocumentReference/{letter['id']}")
    )
    assert by_document.verified

    other = ehr.order(patient, status="completed")
    completed = await verify.report_filed(ReportCheck(order=other, patient=patient))
    assert completed.verified and completed.evidence[0].reference == other


async def test_documents_received_lists_what_is_missing(ehr: Ehr, verify):
    patient = ehr.patient()
    order = ehr.order(patient)
    kept = ehr.document(patient)
    retracted = ehr.document(patient, status="entered-in-error")
    check = DocumentsCheck(
        order=order,
        patient=patient,
        documents=[
            f"DocumentReference/{kept['id']}",
            f"DocumentReference/{retracted['id']}",
            "DocumentReference/missing",
        ],
    )
    verdict = await verify.documents_received(check)
    assert not verdict.verified
    assert verdict.reason == (
        f"DocumentReference/{retracted['id']} is entered-in-error; "
        "DocumentReference/missing is not in the EHR"
    )
    good = await verify.documents_received(
        check.model_copy(update={"documents": [f"DocumentReference/{kept['id']}"]})
    )
    assert good.verified
    assert good.evidence[0].reference == f"DocumentReference/{kept['id']}"


async def test_evidence_hash_is_stable_per_version(ehr: Ehr):
    patient = ehr.patient()
    first = ehr.read(patient)
    again = ehr.read(patient)
    assert evidence_of(first) == evidence_of(again)
    # Key order is not content: the canonical form sorts it away.
    shuffled = dict(reversed(list(first.items())))
    assert canonical_json(shuffled) == canonical_json(first)
    changed = ehr.put({**first, "gender": "unknown"})
    assert evidence_of(changed).sha256 != evidence_of(first).sha256
    assert evidence_of(changed).version_id != evidence_of(first).version_id
