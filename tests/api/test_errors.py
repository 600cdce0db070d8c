"""Every error of the JSON API answers one shape (RFC 9457 problem details) with a detail a person
can act on, every status an operation can answer is in the OpenAPI document, and what the fuzzer
found once stays fixed."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from fastapi import APIRouter
from temporalio.service import RPCError, RPCStatusCode

from api.main import create_app
from tests.conftest import eventually
from workers.codec import KEY_ID
from workers.settings import DEV_PAYLOAD_KEY_ID

from .conftest import new_order

PROBLEM_JSON = "application/problem+json"


def problem(answer, status: int) -> dict:
    """The answer's problem body, checked for its shape."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    body = answer.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"]
    return body


def test_refusals_answer_the_problem_shape(http, cora, ian, audrey, open_case):
    case_id = open_case()["case_id"]
    assert problem(http.get("/api/v1/cases"), 401)["detail"] == (
        "Sign in: a bearer token is required"
    )
    refused = problem(http.get(f"/api/v1/cases/{case_id}", headers=ian), 403)
    assert refused["title"] == "Forbidden" and "imaging" in refused["detail"]
    assert problem(http.get("/api/v1/cases/referral-none", headers=audrey), 404)["detail"] == (
        "No case referral-none"
    )
    unknown = problem(http.get("/api/v1/nothing-here", headers=cora), 404)
    assert unknown["detail"] == "Not Found"
    late = problem(
        http.post(
            f"/api/v1/cases/{case_id}/actions/mark-completed",
            json={"report": "DiagnosticReport/r1"},
            headers=cora,
        ),
        409,
    )
    assert "unassigned" in late["detail"]


def test_invalid_input_says_what_and_where_in_one_sentence(http, admin):
    proposal = {**new_order(), "intent": "proposal", "status": "completed"}
    body = problem(http.post("/api/v1/referrals", json=proposal, headers=admin), 422)
    assert {e["loc"][0] for e in body["errors"]} == {"intent", "status"}
    assert body["detail"].startswith("Invalid request: ")
    assert "intent: " in body["detail"] and "status: " in body["detail"]

    query = problem(http.get("/api/v1/cases", params={"page_size": 0}, headers=admin), 422)
    assert query["errors"][0]["loc"] == ["query", "page_size"]
    assert (
        query["detail"]
        == "Invalid request: query.page_size: Input should be greater than or equal to 1"
    )


def test_a_body_that_is_not_json_is_a_400(http, admin):
    for body in (b"{not json", b"\xff\xfe\x00"):
        answer = http.post(
            "/api/v1/referrals",
            content=body,
            headers={**admin, "content-type": "application/json"},
        )
        assert problem(answer, 400)["detail"] == (
            "The request body is not valid JSON; send a JSON document (UTF-8)"
        )


def test_a_repeated_grouping_counts_once(http, admin, open_case):
    """Was a 500: `group_by=team&group_by=team` grouped by the same column twice."""
    open_case()

    def groups(group_by: list[str]) -> list[dict]:
        answer = http.get("/api/v1/metrics", params={"group_by": group_by}, headers=admin)
        assert answer.status_code == 200, answer.text
        return [g["group"] for g in answer.json()]

    # The ledger follows the case within moments.
    assert eventually(
        lambda: {"team": "cardiology", "case_type": "referral"} in groups(["team", "case_type"])
    )
    assert groups(["team", "case_type", "team"]) == groups(["team", "case_type"])


@pytest.mark.parametrize("path", ["/api/v1/metrics", "/api/v1/audit/events"])
@pytest.mark.parametrize("until", ["0.5", "1700000000", "2026-01-31", "2026-01-31T17:00:00"])
def test_a_moment_is_a_date_time_with_its_offset(http, admin, path, until):
    """Was accepted: `until=0.5` read as half a second after 1970."""
    body = problem(http.get(path, params={"until": until}, headers=admin), 422)
    assert body["errors"][0]["loc"] == ["query", "until"]
    assert "e.g. 2026-01-31T17:00:00Z" in body["detail"]
    assert http.get(path, params={"until": "2026-01-31T17:00:00Z"}, headers=admin).is_success


def test_a_parameter_given_twice_is_refused_unless_it_takes_a_list(http, admin):
    answer = http.get("/api/v1/cases", params={"team": ["cardiology", "imaging"]}, headers=admin)
    assert problem(answer, 422)["errors"] == [
        {"loc": ["query", "team"], "msg": "give this parameter once", "type": "value_error"}
    ]


def test_an_offset_past_any_ledger_is_refused_not_a_500(http, audrey):
    answer = http.get("/api/v1/audit/events", params={"offset": 2**64}, headers=audrey)
    assert problem(answer, 422)["errors"][0]["loc"] == ["query", "offset"]


def test_a_made_up_page_token_is_refused_at_once(http, admin, cora):
    started = time.monotonic()
    answer = http.get("/api/v1/cases", params={"page_token": "AAAAbm90LWEtdG9rZW4="}, headers=admin)
    assert "Invalid page_token" in problem(answer, 422)["detail"]
    assert time.monotonic() - started < 2  # not after Temporal's retries
    # A real token pages only the filters it was given for.
    first = http.get("/api/v1/cases", params={"page_size": 1}, headers=admin).json()
    if first["next_page_token"]:
        other = http.get(
            "/api/v1/cases",
            params={"page_size": 1, "page_token": first["next_page_token"]},
            headers=cora,
        )
        assert other.status_code == 422


def test_a_method_not_answered_names_every_method_the_path_has(http, admin):
    answer = http.delete("/api/v1/cases", headers=admin)
    assert problem(answer, 405)["detail"] == "DELETE is not answered here; use GET, POST"
    assert answer.headers["allow"] == "GET, POST"


def test_the_codec_refuses_what_is_not_payloads(http, audrey):
    assert problem(http.post("/codec/decode", content=b"\xff", headers=audrey), 400)
    refused = http.post("/codec/decode", json={"payloads": None}, headers=audrey)
    assert "protobuf JSON" in problem(refused, 422)["detail"]
    metadata = {"encoding": b"binary/encrypted", KEY_ID: DEV_PAYLOAD_KEY_ID.encode()}
    damaged = {
        "metadata": {name: base64.b64encode(value).decode() for name, value in metadata.items()},
        "data": base64.b64encode(b"\0" * 40).decode(),
    }
    refused = http.post("/codec/decode", json={"payloads": [damaged]}, headers=audrey)
    assert "could not be decrypted" in problem(refused, 422)["detail"]
    assert http.post("/codec/decode", json={}, headers=audrey).json() == {"payloads": []}


def test_times_read_back_from_the_database_carry_their_zone(http, audrey, open_case):
    case_id = open_case()["case_id"]
    http.get(f"/api/v1/cases/{case_id}", headers=audrey)
    [read] = http.get("/api/v1/audit/access", params={"case_id": case_id}, headers=audrey).json()
    assert read["at"].endswith(("Z", "+00:00"))


def test_pages_keep_their_own_error_answers(http):
    gone = http.post("/signin/token")
    assert (gone.status_code, gone.headers["content-type"]) == (404, "application/json")
    assert gone.json() == {"detail": "Not Found"}


SIGNED_BY_TWILIO = {"/api/v1/messaging/twilio/status", "/api/v1/messaging/twilio/inbound"}


def test_every_error_an_operation_answers_is_documented_with_the_problem_shape():
    document = create_app().openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            where = f"{method.upper()} {path}"
            for status, answer in answers.items():
                if status.startswith(("4", "5")):
                    assert answer["content"] == {PROBLEM_JSON: {"schema": problem_ref}}, where
            if path in SIGNED_BY_TWILIO:  # no bearer token: a bad signature is refused, 403
                assert "403" in answers, where
            elif path != "/healthz":
                assert "401" in answers, where
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in answers, where
            if "requestBody" in operation:
                assert "400" in answers, where
            if "{case_id}" in path:
                assert {"403", "404"} <= answers.keys(), where


async def test_server_errors_answer_the_problem_shape_too():
    """Temporal not answering is a 503 to try again; anything else unexpected a 500 naming the
    request id, with nothing of what failed."""
    app = create_app()
    failing = APIRouter()

    @failing.get("/api/v1/down")
    async def down() -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    @failing.get("/api/v1/cut")
    async def cut() -> None:  # as a Temporal server restarting mid-call answers
        raise RPCError("transport error", RPCStatusCode.UNKNOWN, b"")

    @failing.get("/api/v1/broken")
    async def broken() -> None:
        raise RuntimeError("Jane Q Doe")

    app.include_router(failing)
    # No lifespan, so no Temporal: the routes above need none.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        down_answer = await http.get("/api/v1/down")
        cut_answer = await http.get("/api/v1/cut")
        broken_answer = await http.get("/api/v1/broken", headers={"x-request-id": "desk-7"})
    assert problem(down_answer, 503)["detail"] == "Temporal did not answer; try again shortly"
    assert down_answer.headers["retry-after"] == "10"
    assert problem(cut_answer, 503)["detail"] == "Temporal did not answer; try again shortly"
    assert "Request id desk-7" in problem(broken_answer, 500)["detail"]
    assert "Jane" not in broken_answer.text
