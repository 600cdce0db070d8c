"""The payer's notifications reach the case: the webhook, fed what the payer sandbox really sends."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from activities.payer.bundle import SENDER
from activities.payer.models import PasDecision, ReviewAction
from activities.payer.response import parse_notification
from activities.payer.subscription import WEBHOOK_PATH, ensure_subscription
from api.routes import payer
from tests.conftest import eventually
from workers.settings import Settings

from .receiver import Receiver, receiver
from .requests import bundle, claim

TOKEN = "payer-notify-" + uuid.uuid4().hex
DENIAL = {"code": "CR", "display": "Clinical review: criteria not met"}


@workflow.defn(name="PayerDecisionRecorder", sandboxed=False)
class Recorder:
    """Stands in for the prior authorization case: records what the payer decided."""

    def __init__(self) -> None:
        self.decisions: list[PasDecision] = []

    @workflow.signal(name="payer_decided")
    def payer_decided(self, decision: PasDecision) -> None:
        self.decisions.append(decision)

    @workflow.query
    def received(self) -> list[PasDecision]:
        return self.decisions

    @workflow.run
    async def run(self, until: int) -> int:
        await workflow.wait_condition(lambda: len(self.decisions) >= until)
        return len(self.decisions)


def settings(payer_url: str | None = None, public_url: str = "", token: str = TOKEN) -> Settings:
    return Settings(
        environment="test",
        payer_notification_token=token,
        payer_base_url=payer_url,
        public_url=public_url,
    )


@pytest.fixture(scope="module")
def subscriber(payer_url: str) -> Iterator[Receiver]:
    """Our API's address as the payer sees it, recording the notifications, subscribed to by
    `ensure_subscription` as the worker does at start."""
    with receiver() as found:
        public = found.url.removesuffix("/notifications")
        sid = asyncio.run(ensure_subscription(settings(payer_url, public)))
        yield found
        httpx.delete(f"{payer_url}/Subscription/{sid}")


@pytest.fixture(autouse=True)
def rules(sandbox: httpx.Client) -> None:
    pend = [
        {"service": "70004", "action": "A4", "then": "A1", "days": 30},
        {"service": "70005", "action": "A4", "then": "A3", "reason": DENIAL},
    ]
    assert sandbox.put("/sandbox/rules", json=pend).status_code == 200


def decided_notice(
    sandbox: httpx.Client, subscriber: Receiver, case_id: str, action: str = "A1"
) -> dict[str, Any]:
    """What the payer sandbox posts when it decides the case's pended request."""
    before = len(subscriber.received)
    code = "70004" if action == "A1" else "70005"
    assert sandbox.post(
        "/fhir/Claim/$submit", json=bundle(claim(f"{case_id}-1", [code], sender=SENDER))
    ).is_success
    told = sandbox.post(
        f"/sandbox/claims/{case_id}-1/decide", json={"action": action, "reason": DENIAL}
    )
    assert told.status_code == 200, told.text
    assert eventually(lambda: len(subscriber.received) > before, timeout=5)
    headers, notice = subscriber.received[-1]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    return notice


@pytest.fixture
async def api(client: Client) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(payer.router)
    app.state.settings, app.state.temporal = settings(), client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[str]:
    async with Worker(client, task_queue=task_queue, workflows=[Recorder]):
        yield task_queue


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_the_subscription_is_made_once_and_remade_for_a_new_token(payer_url, subscriber):
    public = subscriber.url.removesuffix("/notifications")
    endpoint = public + WEBHOOK_PATH

    def ours() -> list[dict[str, Any]]:
        found = httpx.get(f"{payer_url}/Subscription", params={"url": endpoint}).json()
        return [entry["resource"] for entry in found.get("entry") or []]

    [held] = ours()
    assert asyncio.run(ensure_subscription(settings(payer_url, public))) == held["id"]
    assert held["channel"]["header"] == [f"Authorization: Bearer {TOKEN}"]
    rotated = asyncio.run(
        ensure_subscription(settings(payer_url, public, token="rotated-" + TOKEN))
    )
    [now] = ours()
    assert now["id"] == rotated != held["id"]
    # Back to the token the other tests use.
    assert asyncio.run(ensure_subscription(settings(payer_url, public))) == ours()[0]["id"]
    assert asyncio.run(ensure_subscription(settings(None, public))) is None


async def test_a_decision_is_signalled_to_its_case(api, client, worker, sandbox, subscriber):
    case_id = f"prior-auth-{uuid.uuid4().hex[:10]}"
    handle = await client.start_workflow(Recorder.run, 1, id=case_id, task_queue=worker)
    notice = decided_notice(sandbox, subscriber, case_id, "A3")
    # As the payer sends it: FHIR JSON.
    answer = await api.post(
        WEBHOOK_PATH,
        content=json.dumps(notice),
        headers={**BEARER, "Content-Type": "application/fhir+json"},
    )
    assert answer.status_code == 202
    assert answer.json() == {"delivered": True, "case_id": case_id}
    assert await handle.result() == 1
    [decision] = await handle.query(Recorder.received)
    assert decision == parse_notification(notice)
    assert decision.items[0].action == ReviewAction.NOT_CERTIFIED
    assert decision.items[0].reason == "CR (Clinical review: criteria not met)"


async def test_a_duplicate_is_delivered_again(api, client, worker, sandbox, subscriber):
    case_id = f"prior-auth-{uuid.uuid4().hex[:10]}"
    handle = await client.start_workflow(Recorder.run, 2, id=case_id, task_queue=worker)
    notice = decided_notice(sandbox, subscriber, case_id)
    again = sandbox.post(f"/sandbox/claims/{case_id}-1/notify")
    assert again.status_code == 200
    duplicate = subscriber.received[-1][1]
    assert duplicate == notice
    for body in (notice, duplicate):
        answer = await api.post(WEBHOOK_PATH, json=body, headers=BEARER)
        assert answer.json()["delivered"] is True
    assert await handle.result() == 2
    first, second = await handle.query(Recorder.received)
    assert first == second and first.items[0].action == ReviewAction.CERTIFIED


async def test_a_closed_or_unknown_case_is_not_retried_forever(
    api, client, worker, sandbox, subscriber
):
    closed = f"prior-auth-{uuid.uuid4().hex[:10]}"
    handle = await client.start_workflow(Recorder.run, 0, id=closed, task_queue=worker)
    await handle.result()
    for case_id in (closed, f"prior-auth-{uuid.uuid4().hex[:10]}"):
        notice = decided_notice(sandbox, subscriber, case_id)
        answer = await api.post(WEBHOOK_PATH, json=notice, headers=BEARER)
        assert answer.status_code == 202
        assert answer.json()["delivered"] is False


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1]])
async def test_a_wrong_credential_is_refused(api, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await api.post(WEBHOOK_PATH, json={"resourceType": "Bundle"}, headers=headers)
    assert answer.status_code == 401


def heartbeat(kind: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": "2026-11-25T10:00:00Z",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Parameters",
                    "parameter": [
                        {"name": "type", "valueCode": kind},
                        {"name": "status", "valueCode": "active"},
                    ],
                },
                "request": {"method": "GET", "url": "Subscription/x/$status"},
                "response": {"status": "200"},
            }
        ],
    }


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
async def test_a_handshake_or_heartbeat_signals_nothing(api, kind):
    answer = await api.post(WEBHOOK_PATH, json=heartbeat(kind), headers=BEARER)
    assert answer.status_code == 200 and answer.json()["delivered"] is False


def garbage(notice: dict[str, Any]) -> list[tuple[str, Any]]:
    no_focus = copy.deepcopy(notice)
    no_focus["entry"][0]["resource"]["parameter"] = [
        p
        for p in no_focus["entry"][0]["resource"]["parameter"]
        if p["name"] != "notification-event"
    ]
    not_pas = copy.deepcopy(notice)
    not_pas["entry"][1]["resource"]["entry"].reverse()  # the ClaimResponse is no longer first
    not_ours = copy.deepcopy(notice)
    response = not_ours["entry"][1]["resource"]["entry"][0]["resource"]
    response["request"]["identifier"]["system"] = "urn:someone-else"
    invalid = copy.deepcopy(notice)
    invalid["entry"][1]["resource"]["entry"][0]["resource"]["item"][0]["itemSequence"] = "one"
    unknown_action = copy.deepcopy(notice)
    item = unknown_action["entry"][1]["resource"]["entry"][0]["resource"]["item"][0]
    item["adjudication"][0]["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0][
        "code"
    ] = "ZZ"
    return [
        ("a list", [notice]),
        ("a patient", {"resourceType": "Patient", "name": [{"family": "Synthetic"}]}),
        ("a collection", {**notice, "type": "collection"}),
        ("no focus", no_focus),
        ("not PAS", not_pas),
        ("another system's request", not_ours),
        ("invalid FHIR", invalid),
        ("an unknown review action", unknown_action),
    ]


async def test_garbage_is_refused_without_echoing_it(api, sandbox, subscriber):
    notice = decided_notice(sandbox, subscriber, f"prior-auth-{uuid.uuid4().hex[:10]}")
    for case, body in garbage(notice):
        answer = await api.post(WEBHOOK_PATH, json=body, headers=BEARER)
        assert answer.status_code == 422, (case, answer.text)
        assert "Synthetic" not in answer.text and "prior-auth" not in answer.text, case
