"""Each message to a patient, recorded in the EHR sandbox as a FHIR R4 Communication, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.communication import Communication

from activities.fhir.client import FhirClient
from activities.fhir.communication import ATTEMPT_SYSTEM, CommunicationActivities
from workflows.care.messaging import CommunicationRecord, Medium

from .records import Ehr


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


def attempt(ehr: Ehr, **changes) -> CommunicationRecord:
    patient = ehr.patient()
    fields = {
        "attempt_id": f"referral-{uuid.uuid4().hex[:10]}-m1",
        "patient": patient,
        "order": ehr.order(patient),
        "channel": Medium.SMS,
        "status": "completed",
        "sent": datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
        "text": "Clinic: please call us at 555-0100 to schedule a visit. Reply STOP to opt out.",
    }
    return CommunicationRecord(**{**fields, **changes})


def stored(ehr: Ehr, attempt_id: str) -> list[dict]:
    bundle = ehr.http.get(
        "/Communication", params={"identifier": f"{ATTEMPT_SYSTEM}|{attempt_id}"}
    ).json()
    return [entry["resource"] for entry in bundle.get("entry") or []]


async def test_a_sent_text_is_written_once_for_two_calls(ehr: Ehr, ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    record = attempt(ehr)
    activities = CommunicationActivities(client)
    first = await activities.record(record)
    again = await activities.record(record)  # a retry after the answer was lost
    await client.aclose()

    assert first == again and first.startswith("Communication/")
    found = stored(ehr, record.attempt_id)
    assert len(found) == 1
    resource = found[0]
    Communication.model_validate(resource)  # FHIR R4 as the EHR keeps it
    assert resource["identifier"] == [{"system": ATTEMPT_SYSTEM, "value": record.attempt_id}]
    assert resource["status"] == "completed" and "statusReason" not in resource
    coding = resource["medium"][0]["coding"][0]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
    assert coding["code"] == "WRITTEN"
    assert resource["subject"] == {"reference": record.patient}
    assert resource["recipient"] == [{"reference": record.patient}]
    assert resource["basedOn"] == [{"reference": record.order}]
    assert resource["payload"] == [{"contentString": record.text}]
    assert datetime.fromisoformat(resource["sent"]) == record.sent


@pytest.mark.parametrize(
    ("channel", "code"), [(Medium.EMAIL, "EMAILWRIT"), (Medium.PORTAL, "ONLINEWRIT")]
)
async def test_an_attempt_that_could_not_go_is_not_done_with_its_reason(
    ehr: Ehr, ehr_url: str, channel: Medium, code: str
):
    client = FhirClient(ehr_url, timeout=5)
    record = attempt(
        ehr,
        channel=channel,
        status="not-done",
        status_reason="No address on file for this channel",
        sent=None,
    )
    await CommunicationActivities(client).record(record)
    await client.aclose()

    (resource,) = stored(ehr, record.attempt_id)
    assert resource["status"] == "not-done"
    assert resource["statusReason"] == {"text": "No address on file for this channel"}
    assert resource["medium"][0]["coding"][0]["code"] == code
    assert "sent" not in resource


async def test_a_send_time_without_an_offset_is_read_as_utc(ehr: Ehr, ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    record = attempt(ehr, sent=datetime(2026, 11, 25, 15, 0))  # as a database may hand it back
    await CommunicationActivities(client).record(record)
    await client.aclose()
    (resource,) = stored(ehr, record.attempt_id)
    assert datetime.fromisoformat(resource["sent"]) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
