"""The payer sandbox speaks PAS: refusals, decisions, inquiry, cancel, subscriptions."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claimresponse import ClaimResponse

from tests.conftest import eventually
from workers import dev, payer_sandbox

from .receiver import receiver
from .requests import PAS, bundle, cancel, claim, new_identifier

REVIEW_ACTION = f"{PAS}/extension-reviewAction"
REVIEW_ACTION_CODE = f"{PAS}/extension-reviewActionCode"
X12_306 = "https://codesystem.x12.org/005010/306"
TOPIC = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
DENIAL = {"code": "CR", "display": "Clinical review: criteria not met"}
RULES = [
    {"service": "70001", "action": "A1", "days": 30},
    {"service": "70003", "action": "A3", "reason": DENIAL},
    {"service": "70004", "action": "A4", "then": "A1", "days": 60},
    {"service": "70005", "action": "A4", "then": "A3", "reason": DENIAL, "after_seconds": 0.3},
]


@pytest.fixture(autouse=True)
def rules(sandbox: httpx.Client) -> None:
    assert sandbox.put("/sandbox/rules", json=RULES).status_code == 200


def submit(sandbox: httpx.Client, body: Any) -> httpx.Response:
    return sandbox.post("/fhir/Claim/$submit", json=body)


def decided(response: httpx.Response) -> dict[str, Any]:
    """The ClaimResponse of a valid PAS response Bundle."""
    assert response.status_code == 200, response.text
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == "collection" and answer["identifier"] and answer["timestamp"]
    first = answer["entry"][0]["resource"]
    ClaimResponse.model_validate(first)
    referenced = {first[f]["reference"] for f in ("patient", "insurer", "requestor")}
    included = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in answer["entry"]}
    assert referenced <= included
    return first


def review(item: dict[str, Any]) -> dict[str, Any]:
    """An item's reviewAction, by its sub-extensions' urls."""
    [adjudication] = item["adjudication"]
    [action] = [e for e in adjudication["extension"] if e["url"] == REVIEW_ACTION]
    return {e["url"]: e for e in action["extension"]}


def action_of(item: dict[str, Any]) -> str:
    [coding] = review(item)[REVIEW_ACTION_CODE]["valueCodeableConcept"]["coding"]
    assert coding["system"] == X12_306
    return coding["code"]


def item_extension(item: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in item["extension"] if e["url"] == f"{PAS}/{name}"), None)


def without(path: list[Any], body: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target = changed
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return changed


def good() -> dict[str, Any]:
    return bundle(claim(new_identifier(), ["70001"]))


def malformed() -> list[tuple[str, dict[str, Any] | list]]:
    wrong_use = good()
    wrong_use["entry"][0]["resource"]["use"] = "claim"
    claim_second = good()
    claim_second["entry"].reverse()
    dangling = good()
    dangling["entry"][0]["resource"]["provider"] = {"reference": "Practitioner/absent"}
    twice = good()
    twice["entry"].append(copy.deepcopy(twice["entry"][1]))
    invalid = good()
    invalid["entry"][0]["resource"]["item"][0]["sequence"] = "first"
    return [
        ("not a bundle", [{"resourceType": "Claim"}]),
        ("a patient", {"resourceType": "Patient", "name": [{"family": "Synthetic"}]}),
        ("use claim", wrong_use),
        ("claim second", claim_second),
        ("no insurer", without(["entry", 0, "resource", "insurer"], good())),
        ("no items", without(["entry", 0, "resource", "item"], good())),
        ("no insurance", without(["entry", 0, "resource", "insurance"], good())),
        ("dangling reference", dangling),
        ("twice", twice),
        ("invalid FHIR", invalid),
    ]


@pytest.mark.parametrize(("case", "body"), malformed(), ids=[c for c, _ in malformed()])
def test_a_malformed_request_is_refused_with_an_operation_outcome(sandbox, case, body):
    response = submit(sandbox, body)
    assert response.status_code == 400, (case, response.text)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert all(issue["severity"] == "error" and issue["code"] for issue in outcome["issue"])
    assert "Synthetic" not in response.text and "Clinician" not in response.text


def test_the_refusal_says_where(sandbox):
    dangling = good()
    dangling["entry"][0]["resource"]["provider"] = {"reference": "Practitioner/absent"}
    [issue] = submit(sandbox, dangling).json()["issue"]
    assert issue["expression"] == ["Bundle.entry[0].resource.provider"]
    assert "absent" not in issue["diagnostics"]


def test_approved_items_carry_the_auth_number_and_their_period(sandbox):
    response = decided(
        submit(sandbox, bundle(claim(new_identifier(), ["70001", "99999"], "2027-01-10")))
    )
    assert response["use"] == "preauthorization" and response["status"] == "active"
    assert response["outcome"] == "complete"
    assert response["request"]["identifier"]["system"] == "urn:followthrough:case"
    first, unknown = response["item"]
    assert [action_of(first), action_of(unknown)] == ["A1", "A1"]
    assert review(first)["number"]["valueString"] == response["preAuthRef"]
    assert item_extension(first, "extension-itemPreAuthPeriod")["valuePeriod"] == {
        "start": "2027-01-10",
        "end": "2027-02-08",  # 30 days
    }
    # An unknown service code: approved for 90 days.
    assert item_extension(unknown, "extension-itemPreAuthPeriod")["valuePeriod"]["end"] == (
        "2027-04-09"
    )


def test_a_denial_carries_its_reason(sandbox):
    response = decided(submit(sandbox, bundle(claim(new_identifier(), ["70003"]))))
    [item] = response["item"]
    assert action_of(item) == "A3"
    [reason] = review(item)["reasonCode"]["valueCodeableConcept"]["coding"]
    assert reason == {"system": "https://codesystem.x12.org/external/886", **DENIAL}
    assert "preAuthRef" not in response and "number" not in review(item)


def test_a_pended_request_has_an_administration_reference_and_is_inquired(sandbox):
    request = claim(new_identifier(), ["70004"])
    response = decided(submit(sandbox, bundle(request)))
    [item] = response["item"]
    assert action_of(item) == "A4"
    pended = item_extension(item, "extension-administrationReferenceNumber")["valueString"]
    assert pended

    inquiry = claim(request["identifier"][0]["value"], [])
    del inquiry["item"]
    found = sandbox.post("/fhir/Claim/$inquire", json=bundle(inquiry)).json()
    [answer] = found["parameter"]
    assert answer["name"] == "return"
    assert answer["resource"]["entry"][0]["resource"]["identifier"] == response["identifier"]

    key = request["identifier"][0]["value"]
    assert sandbox.post(f"/sandbox/claims/{key}/decide", json={"action": "A1"}).status_code == 200
    after = sandbox.post("/fhir/Claim/$inquire", json=bundle(inquiry)).json()
    now = after["parameter"][0]["resource"]["entry"][0]["resource"]
    assert action_of(now["item"][0]) == "A1" and now["identifier"] != response["identifier"]
    # Another patient's request is not found by this one's identifier.
    inquiry["patient"] = {"reference": "Patient/someone-else"}
    other = bundle(inquiry, extra=[{"resourceType": "Patient", "id": "someone-else"}])
    assert sandbox.post("/fhir/Claim/$inquire", json=other).json()["parameter"] == []


def test_the_same_request_again_gets_the_same_answer(sandbox):
    body = bundle(claim(new_identifier(), ["70001"]))
    first, second = decided(submit(sandbox, body)), decided(submit(sandbox, body))
    assert first["identifier"] == second["identifier"]


def test_a_cancel_answers_c_and_no_decision_follows(sandbox):
    original = claim(new_identifier(), ["70004"])
    decided(submit(sandbox, bundle(original)))
    response = decided(submit(sandbox, cancel(original)))
    assert [action_of(item) for item in response["item"]] == ["C"]
    key = original["identifier"][0]["value"]
    late = sandbox.post(f"/sandbox/claims/{key}/decide", json={"action": "A1"})
    assert late.status_code == 409
    [stored] = [c for c in sandbox.get("/sandbox/claims").json() if c["identifier"] == key]
    assert stored["cancelled"] and stored["deliveries"] == []
    assert action_of(stored["response"]["entry"][0]["resource"]["item"][0]) == "C"


def test_a_cancel_of_an_unknown_request_is_refused(sandbox):
    response = submit(sandbox, cancel(claim(new_identifier(), ["70001"])))
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "not-found"


def subscription(endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Tests",
        "criteria": TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": f"{BACKPORT}/backport-payload-content", "valueCode": "full-resource"}
                ]
            },
            "header": ["Authorization: Bearer test-token"],
        },
    }


def test_a_subscription_is_told_of_a_decision_and_can_be_told_again(sandbox):
    with receiver() as subscriber:
        created = sandbox.post("/fhir/Subscription", json=subscription(subscriber.url))
        assert created.status_code == 201 and created.json()["status"] == "active"
        sid = created.json()["id"]
        found = sandbox.get("/fhir/Subscription", params={"url": subscriber.url}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [sid]
        try:
            request = claim(new_identifier(), ["70004"])
            decided(submit(sandbox, bundle(request)))
            assert subscriber.received == []  # a pend is the answer to $submit, not a notice
            key = request["identifier"][0]["value"]
            subscriber.failures = 1  # the first attempt fails: delivered on the retry
            told = sandbox.post(f"/sandbox/claims/{key}/decide", json={"action": "A1"}).json()
            assert told["deliveries"][0]["attempts"] == 2
            [(headers, notice)] = subscriber.received
            assert headers["Authorization"] == "Bearer test-token"
            Bundle.model_validate(notice)
            assert notice["type"] == "history"
            status = {p["name"]: p for p in notice["entry"][0]["resource"]["parameter"]}
            assert status["type"]["valueCode"] == "event-notification"
            assert status["topic"]["valueCanonical"] == TOPIC
            assert status["subscription"]["valueReference"]["reference"].endswith(sid)
            focus = {p["name"]: p for p in status["notification-event"]["part"]}["focus"]
            assert focus["valueReference"]["reference"] == notice["entry"][1]["fullUrl"]
            pas = notice["entry"][1]["resource"]
            assert pas["type"] == "collection"
            assert action_of(decided_bundle(pas)["item"][0]) == "A1"

            again = sandbox.post(f"/sandbox/claims/{key}/notify")
            assert again.status_code == 200
            assert subscriber.bodies() == [notice, notice]
        finally:
            sandbox.delete(f"/fhir/Subscription/{sid}")


def decided_bundle(pas: dict[str, Any]) -> dict[str, Any]:
    Bundle.model_validate(pas)
    return pas["entry"][0]["resource"]


def test_a_pend_is_decided_after_its_delay(sandbox):
    with receiver() as subscriber:
        sid = sandbox.post("/fhir/Subscription", json=subscription(subscriber.url)).json()["id"]
        try:
            started = time.monotonic()
            decided(submit(sandbox, bundle(claim(new_identifier(), ["70005"]))))
            assert eventually(subscriber.bodies, timeout=5)
            assert time.monotonic() - started >= 0.3
            pas = subscriber.bodies()[0]["entry"][1]["resource"]
            assert action_of(decided_bundle(pas)["item"][0]) == "A3"
        finally:
            sandbox.delete(f"/fhir/Subscription/{sid}")


def test_a_subscription_for_another_topic_is_refused(sandbox):
    wrong = subscription("http://127.0.0.1:9/x")
    wrong["criteria"] = "Claim?status=active"
    assert sandbox.post("/fhir/Subscription", json=wrong).status_code == 400


def test_rules_from_a_file_and_data_that_outlive_a_restart(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"service": "71111", "action": "A3", "reason": DENIAL}]))
    port = dev.free_port()
    request = claim(new_identifier(), ["71111"])

    def started() -> httpx.Client:
        process = payer_sandbox.start_payer_sandbox(port, tmp_path / "data", None, rules)
        processes.append(process)
        url = payer_sandbox.wait_for_payer_sandbox(port, process)
        return httpx.Client(base_url=url.removesuffix("/fhir"), timeout=10)

    processes: list = []
    try:
        with started() as first:
            denied = decided(submit(first, bundle(request)))
            assert action_of(denied["item"][0]) == "A3"
        dev.stop(processes.pop())
        with started() as again:
            [kept] = again.get("/sandbox/claims").json()
            assert kept["response"]["entry"][0]["resource"]["identifier"] == denied["identifier"]
    finally:
        dev.stop(*processes)
