"""The FHIR client against the real sandbox: interactions, pages and how failures are classified."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.fhir import failures as fhir
from activities.fhir.client import MAX_MESSAGE, FhirClient, parse
from workers import dev


@pytest.fixture
async def ehr(ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    yield client
    await client.aclose()


def patient() -> dict:
    return {"resourceType": "Patient", "id": f"p-{uuid.uuid4().hex[:10]}", "active": True}


async def test_create_read_update_and_parse(ehr: FhirClient):
    created = await ehr.update(patient())
    read = await ehr.read("Patient", created["id"])
    assert read["meta"] == created["meta"]
    model = parse(read)
    assert model.get_resource_type() == "Patient" and model.active is True
    changed = await ehr.update({**read, "active": False}, if_match=read["meta"]["versionId"])
    assert changed["meta"]["versionId"] != read["meta"]["versionId"]


async def test_search_follows_every_page(ehr: FhirClient):
    subject = await ehr.update(patient())
    for _ in range(5):
        await ehr.create(
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/{subject['id']}"},
            }
        )
    found = await ehr.search(
        "ServiceRequest", {"subject": f"Patient/{subject['id']}", "_count": "2"}
    )
    assert len(found) == 5 and len({order["id"] for order in found}) == 5


async def test_client_errors_are_not_retryable_and_carry_the_outcome_text(ehr: FhirClient):
    with pytest.raises(ApplicationError) as refused:
        await ehr.create({"resourceType": "ServiceRequest", "status": "active"})
    assert refused.value.type == fhir.REJECTED and refused.value.non_retryable
    assert "HTTP 400" in refused.value.message and "ServiceRequest.intent" in refused.value.message
    assert len(refused.value.message) <= MAX_MESSAGE

    with pytest.raises(ApplicationError) as missing:
        await ehr.read("Appointment", "does-not-exist")
    assert missing.value.type == fhir.NOT_FOUND and missing.value.non_retryable


async def test_a_stale_version_is_a_conflict(ehr: FhirClient):
    created = await ehr.update(patient())
    await ehr.update({**created, "active": False}, if_match=created["meta"]["versionId"])
    with pytest.raises(ApplicationError) as stale:
        await ehr.update({**created, "gender": "other"}, if_match=created["meta"]["versionId"])
    assert stale.value.type == fhir.VERSION_CONFLICT


async def test_an_unreachable_ehr_is_retryable():
    client = FhirClient(f"http://127.0.0.1:{dev.free_port()}/fhir/R4", timeout=2)
    with pytest.raises(ApplicationError) as down:
        await client.read("Patient", "p1")
    await client.aclose()
    assert down.value.type == fhir.UNAVAILABLE and not down.value.non_retryable


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_and_server_errors_retry_after_the_servers_delay(status: int):
    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": "120"})

    client = FhirClient("http://ehr.test/fhir", transport=httpx.MockTransport(busy))
    with pytest.raises(ApplicationError) as busy_error:
        await client.read("Patient", "p1")
    await client.aclose()
    assert busy_error.value.type == fhir.UNAVAILABLE and not busy_error.value.non_retryable
    assert busy_error.value.next_retry_delay == timedelta(seconds=120)


async def test_next_links_to_another_host_are_not_followed():
    def answer(request: httpx.Request) -> httpx.Response:
        link = [{"relation": "next", "url": "http://elsewhere.test/fhir/Patient?page=2"}]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "link": link}
        )

    client = FhirClient("http://ehr.test/fhir", transport=httpx.MockTransport(answer))
    with pytest.raises(ApplicationError, match="another host"):
        await client.search("Patient", {})
    await client.aclose()
