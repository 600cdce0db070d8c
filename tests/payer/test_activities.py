"""The PAS activities against the EHR sandbox and the payer sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.payer.failures import INVALID_RESPONSE, NOT_FOUND, REJECTED, UNAVAILABLE
from activities.payer.models import PasInquiry, PasItem, PasRequest, ReviewAction
from activities.payer.pas import PayerActivities
from tests.ehr.records import Ehr, new_id
from workers import dev

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
DENIAL = {"code": "CR", "display": "Clinical review: criteria not met"}
RULES = [
    {"service": "72148", "action": "A1", "days": 60},
    {"service": "72149", "action": "A3", "reason": DENIAL},
    {"service": "72158", "action": "A4", "then": "A1", "days": 30},
]


@dataclass
class Chart:
    """A patient's records in the EHR, as a prior authorization request needs them."""

    performer: str
    patient: str
    coverage: str
    payer: str
    provider: str
    order: str
    documents: list[str]

    def request(self, code: str = "72148", **changes: Any) -> PasRequest:
        fields = {
            "case_id": f"prior-auth-{new_id('sr')}",
            "submission": 1,
            "patient": self.patient,
            "coverage": self.coverage,
            "provider": self.provider,
            "order": self.order,
            "items": [PasItem(sequence=1, service_code=code, serviced_date=date(2027, 3, 1))],
            "supporting": self.documents,
        }
        return PasRequest(**{**fields, **changes})


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def chart(ehr: Ehr) -> Chart:
    patient = ehr.patient()
    payer = ehr.put({"resourceType": "Organization", "id": new_id("org"), "name": "Sandbox Plan"})
    practitioner = ehr.put(
        {"resourceType": "Practitioner", "id": new_id("prac"), "name": [{"family": "Clinician"}]}
    )
    coverage = ehr.put(
        {
            "resourceType": "Coverage",
            "id": new_id("cov"),
            "status": "active",
            "beneficiary": {"reference": patient},
            "payor": [{"reference": f"Organization/{payer['id']}"}],
        }
    )
    provider = f"Practitioner/{practitioner['id']}"
    # Referenced by the order only: the request carries it too (references of references).
    performer = ehr.put({"resourceType": "Organization", "id": new_id("org"), "name": "Imaging"})
    order = ehr.order(
        patient,
        requester={"reference": provider},
        performer=[{"reference": f"Organization/{performer['id']}"}],
    )
    documents = [
        ehr.put(
            {
                "resourceType": "DocumentReference",
                "id": new_id("doc"),
                "status": "current",
                "subject": {"reference": patient},
                "author": [{"reference": provider}],
                "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZXM="}}],
            }
        )
        for _ in range(2)
    ]
    return Chart(
        f"Organization/{performer['id']}",
        patient,
        f"Coverage/{coverage['id']}",
        f"Organization/{payer['id']}",
        provider,
        order,
        [f"DocumentReference/{d['id']}" for d in documents],
    )


@pytest.fixture(autouse=True)
def rules(sandbox: httpx.Client) -> None:
    assert sandbox.put("/sandbox/rules", json=RULES).status_code == 200


@pytest.fixture
async def payer(ehr_url: str, payer_url: str) -> AsyncIterator[PayerActivities]:
    activities = PayerActivities(FhirClient(ehr_url, timeout=10), payer_url, timeout=10)
    yield activities
    await activities.aclose()
    await activities.fhir.aclose()


def stored(sandbox: httpx.Client, identifier: str) -> dict[str, Any]:
    [found] = [c for c in sandbox.get("/sandbox/claims").json() if c["identifier"] == identifier]
    return found


def name(entry: dict[str, Any]) -> str:
    return f"{entry['resource']['resourceType']}/{entry['resource']['id']}"


async def test_an_approval_has_its_auth_number_and_period(payer, chart, sandbox):
    request = chart.request("72148")
    decision = await payer.submit(request)
    assert (decision.case_id, decision.submission) == (request.case_id, 1)
    [item] = decision.items
    assert item.action == ReviewAction.CERTIFIED and item.sequence == 1
    assert item.auth_number and item.auth_number.startswith("PA")
    assert (item.valid_from, item.valid_to) == (date(2027, 3, 1), date(2027, 4, 29))
    assert decision.outcome == "complete" and decision.response.startswith("cr-")


async def test_the_bundle_has_the_claim_first_and_each_referenced_resource_once(
    payer, chart, sandbox
):
    request = chart.request("72148", expedited=True)
    await payer.submit(request)
    bundle = stored(sandbox, f"{request.case_id}-1")["bundle"]
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection" and bundle["identifier"] and bundle["timestamp"]
    claim = bundle["entry"][0]["resource"]
    assert claim["resourceType"] == "Claim" and claim["use"] == "preauthorization"
    assert claim["identifier"] == [
        {"system": "urn:followthrough:case", "value": f"{request.case_id}-1"}
    ]
    names = [name(entry) for entry in bundle["entry"][1:]]
    assert len(names) == len(set(names))
    expected = {chart.patient, chart.coverage, chart.payer, chart.provider, chart.order}
    expected.add(chart.performer)
    assert expected | set(chart.documents) <= set(names)
    assert claim["insurer"] == {"reference": chart.payer}
    assert claim["insurance"] == [
        {"sequence": 1, "focal": True, "coverage": {"reference": chart.coverage}}
    ]
    assert [info["valueReference"]["reference"] for info in claim["supportingInfo"]] == (
        chart.documents
    )
    assert {info["category"]["coding"][0]["code"] for info in claim["supportingInfo"]} == {
        "additionalInformation"
    }
    [item] = claim["item"]
    urls = {e["url"]: e for e in item["extension"]}
    assert (
        urls[f"{PAS}/extension-certificationType"]["valueCodeableConcept"]["coding"][0]["code"]
        == "I"
    )
    assert f"{PAS}/extension-serviceItemRequestType" in urls
    assert item["productOrService"]["coding"][0]["code"] == "72148"
    # Expedited: X12's urgent level of service, and FHIR's stat priority.
    level = {e["url"]: e for e in claim["extension"]}[f"{PAS}/extension-levelOfServiceCode"]
    assert level["valueCodeableConcept"]["coding"][0]["code"] == "U"
    assert claim["priority"]["coding"][0]["code"] == "stat"


async def test_a_denial_has_its_reason(payer, chart):
    decision = await payer.submit(chart.request("72149"))
    [item] = decision.items
    assert item.action == ReviewAction.NOT_CERTIFIED
    assert item.reason == "CR (Clinical review: criteria not met)"
    assert item.auth_number is None


async def test_a_pend_has_its_reference_and_the_inquiry_shows_the_decision(payer, chart, sandbox):
    request = chart.request("72158")
    pended = await payer.submit(request)
    [item] = pended.items
    assert item.action == ReviewAction.PENDED and item.pended_reference.startswith("PEND")
    inquiry = PasInquiry(
        case_id=request.case_id,
        submission=1,
        patient=chart.patient,
        coverage=chart.coverage,
        provider=chart.provider,
    )
    assert (await payer.inquire(inquiry)).items[0].action == ReviewAction.PENDED
    told = sandbox.post(f"/sandbox/claims/{request.case_id}-1/decide", json={"action": "A1"})
    assert told.status_code == 200
    decided = await payer.inquire(inquiry)
    assert decided.items[0].action == ReviewAction.CERTIFIED and decided.items[0].auth_number
    assert decided.response != pended.response
    with pytest.raises(ApplicationError) as unknown:
        await payer.inquire(inquiry.model_copy(update={"submission": 7}))
    assert unknown.value.type == NOT_FOUND and unknown.value.non_retryable


async def test_a_cancel_answers_cancelled(payer, chart, sandbox):
    request = chart.request("72158")
    await payer.submit(request)
    cancelled = await payer.submit(request.model_copy(update={"cancel": True}))
    assert (cancelled.case_id, cancelled.submission) == (request.case_id, 1)
    assert [item.action for item in cancelled.items] == [ReviewAction.CANCELLED]
    original = stored(sandbox, f"{request.case_id}-1")
    assert original["cancelled"]
    late = sandbox.post(f"/sandbox/claims/{request.case_id}-1/decide", json={"action": "A1"})
    assert late.status_code == 409


async def test_a_refusal_is_final_and_names_no_one(payer, chart):
    # Cancelling a request the payer never received: a 400 from the real sandbox.
    never = chart.request("72148", cancel=True)
    with pytest.raises(ApplicationError) as refused:
        await payer.submit(never)
    assert refused.value.non_retryable and refused.value.type == REJECTED
    assert "HTTP 400" in refused.value.message and "not-found" in refused.value.message


async def test_a_payers_words_about_the_patient_stay_out_of_the_failure(ehr_url, chart):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "business-rule",
                        "diagnostics": "Jane Doe (born 1961-04-09, member 88812) has no coverage",
                    }
                ],
            },
        )

    payer = PayerActivities(
        FhirClient(ehr_url, timeout=10),
        "http://payer.test/fhir",
        transport=httpx.MockTransport(answer),
    )
    with pytest.raises(ApplicationError) as refused:
        await payer.submit(chart.request())
    message = refused.value.message
    assert refused.value.non_retryable and "business-rule" in message
    for phi in ("Jane", "Doe", "1961", "88812"):
        assert phi not in message


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_payer_error_is_retried(ehr_url, chart, status):
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    payer = PayerActivities(
        FhirClient(ehr_url, timeout=10), "http://payer.test/fhir", transport=transport
    )
    with pytest.raises(ApplicationError) as failed:
        await payer.submit(chart.request())
    assert failed.value.type == UNAVAILABLE and not failed.value.non_retryable


async def test_a_payer_that_is_down_is_retried(ehr_url, chart):
    down = f"http://127.0.0.1:{dev.free_port()}/fhir"
    payer = PayerActivities(FhirClient(ehr_url, timeout=10), down, timeout=2)
    with pytest.raises(ApplicationError) as failed:
        await payer.submit(chart.request())
    assert failed.value.type == UNAVAILABLE and not failed.value.non_retryable


async def test_an_answer_that_is_not_pas_is_final(ehr_url, chart):
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"resourceType": "Bundle", "type": "collection"})
    )
    payer = PayerActivities(
        FhirClient(ehr_url, timeout=10), "http://payer.test/fhir", transport=transport
    )
    with pytest.raises(ApplicationError) as failed:
        await payer.submit(chart.request())
    assert failed.value.type == INVALID_RESPONSE and failed.value.non_retryable


async def test_a_coverage_of_someone_else_is_refused_before_sending(payer, chart, ehr):
    other = chart.request(patient=ehr.patient())
    with pytest.raises(ApplicationError) as refused:
        await payer.submit(other)
    assert refused.value.non_retryable and "does not cover" in refused.value.message
