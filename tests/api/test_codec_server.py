"""The codec server shows encrypted payloads to auditors and admins, from the Temporal UI only."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter

from api.web.session import SESSION_COOKIE
from workers.client import connect
from workers.codec import KEY_ID

UI = "http://127.0.0.1:8233"  # the dev server's Web UI, the default allowed origin
ELSEWHERE = "https://phish.example"


def wire(value: object) -> dict:
    """One payload as the Temporal UI and CLI send it: protobuf JSON, bytes in base64."""
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value).encode()).decode(),
    }


def started_payload(temporal_address: str, case_id: str) -> dict:
    """The case's start input exactly as Temporal stores it (read without the codec)."""

    async def read() -> dict:
        raw = await connect(temporal_address, converter=pydantic_data_converter)
        history = await raw.get_workflow_handle(case_id).fetch_history()
        [payload] = history.events[0].workflow_execution_started_event_attributes.input.payloads
        return {
            "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode(),
        }

    return asyncio.run(read())


def test_an_auditor_reads_a_case_s_stored_input_through_the_codec(
    http, audrey, open_case, temporal_address
):
    case = open_case()
    stored = started_payload(temporal_address, case["case_id"])
    assert base64.b64decode(stored["metadata"][KEY_ID]) == b"dev-1"
    assert b"Cardiology consult" not in base64.b64decode(stored["data"])

    decoded = http.post(
        "/codec/decode", json={"payloads": [stored]}, headers={**audrey, "Origin": UI}
    )

    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI
    [payload] = decoded.json()["payloads"]
    order = json.loads(base64.b64decode(payload["data"]))["order"]
    assert order["service"] == "Cardiology consult"


def test_encode_then_decode_gives_the_payload_back(http, admin):
    sent = wire({"note": "called twice"})
    encoded = http.post("/codec/encode", json={"payloads": [sent]}, headers=admin)
    [sealed] = encoded.json()["payloads"]
    assert b"called twice" not in base64.b64decode(sealed["data"])

    decoded = http.post("/codec/decode", json={"payloads": [sealed]}, headers=admin)

    assert decoded.json()["payloads"] == [sent]


def test_a_coordinator_or_nobody_is_refused(http, cora, admin):
    sealed = http.post("/codec/encode", json={"payloads": [wire(1)]}, headers=admin).json()

    as_coordinator = http.post("/codec/decode", json=sealed, headers={**cora, "Origin": UI})
    anonymous = http.post("/codec/decode", json=sealed, headers={"Origin": UI})

    assert as_coordinator.status_code == 403
    assert "payloads" not in as_coordinator.json()
    assert anonymous.status_code == 401


def test_a_page_from_another_origin_is_refused_even_with_an_auditor_s_token(http, audrey, admin):
    sealed = http.post("/codec/encode", json={"payloads": [wire(1)]}, headers=admin).json()

    elsewhere = http.post("/codec/decode", json=sealed, headers={**audrey, "Origin": ELSEWHERE})
    preflight_elsewhere = http.options(
        "/codec/decode",
        headers={"Origin": ELSEWHERE, "Access-Control-Request-Method": "POST"},
    )
    preflight_ui = http.options(
        "/codec/decode", headers={"Origin": UI, "Access-Control-Request-Method": "POST"}
    )

    assert elsewhere.status_code == 403
    assert "payloads" not in elsewhere.json()
    assert "access-control-allow-origin" not in elsewhere.headers
    assert preflight_elsewhere.status_code == 403
    assert "access-control-allow-origin" not in preflight_elsewhere.headers
    assert preflight_ui.status_code == 204
    assert preflight_ui.headers["access-control-allow-origin"] == UI
    assert "authorization" in preflight_ui.headers["access-control-allow-headers"]


def test_the_temporal_ui_may_send_the_web_session_instead_of_a_token(http, stack, admin):
    sealed = http.post("/codec/encode", json={"payloads": [wire("kept")]}, headers=admin).json()

    def decode_as(role: str, team: str | None = None) -> int:
        token = stack.token(role, role, team)["Authorization"].split()[1]
        with httpx.Client(
            base_url=stack.base_url, cookies={SESSION_COOKIE: token}, timeout=30
        ) as browser:
            return browser.post("/codec/decode", json=sealed, headers={"Origin": UI}).status_code

    assert decode_as("auditor") == 200
    assert decode_as("coordinator", "cardiology") == 403
