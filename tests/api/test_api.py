"""The API against a real Temporal dev server, a worker and the API process."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.routes.metrics import scrape_token_accepted
from tests.conftest import eventually
from workers.settings import DEV_METRICS_SCRAPE_TOKEN, Settings

from .conftest import IMAGING, SCRAPE_TOKEN, new_order


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_health_and_docs(http):
    assert http.get("/healthz").json() == {"status": "ok", "temporal": "ok"}
    assert "/api/v1/referrals" in http.get("/openapi.json").json()["paths"]


def test_each_request_is_logged_once_with_its_id_its_case_and_its_caller(http, stack, cora):
    order = new_order()
    order["subject"]["display"] = "Jane Q Doe"
    opened = http.post("/api/v1/referrals", json=order, headers={**cora, "x-request-id": "desk-42"})
    assert opened.headers["x-request-id"] == "desk-42"
    case_id = opened.json()["case_id"]
    noted = http.post(
        f"/api/v1/cases/{case_id}/actions/add-note",
        json={"text": "Patient prefers mornings"},
        headers={**cora, "x-request-id": "<script> id=1"},
    )
    request_id = noted.headers["x-request-id"]
    assert request_id != "<script> id=1" and len(request_id) == 32

    def logged():
        lines = [json.loads(line) for line in stack.api_log.read_text().splitlines() if "{" in line]
        mine = [line for line in lines if line.get("request_id") == request_id]
        return mine if any(line["event"] == "request" for line in mine) else None

    request = [line for line in eventually(logged) if line["event"] == "request"]
    assert len(request) == 1
    assert request[0] | {"ms": 0} == request[0] | {
        "method": "POST",
        "path": f"/api/v1/cases/{case_id}/actions/add-note",
        "status": 200,
        "case_id": case_id,
        "action": "add-note",
        "user_id": "cora",
        "ms": 0,
    }
    text = stack.api_log.read_text()
    assert "Jane Q Doe" not in text and "mornings" not in text
    # The web UI's pages carry its security headers; the JSON API does not need them.
    assert "default-src 'self'" in http.get("/signin").headers["content-security-policy"]
    assert "content-security-policy" not in noted.headers


def test_tokens_are_required_and_roles_enforced(http, stack, audrey, ian):
    assert http.get("/api/v1/cases").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert http.get("/api/v1/cases", headers=bad).status_code == 401
    forged = stack.token("cora", "coordinator", "cardiology")
    forged["Authorization"] = forged["Authorization"][:-4] + "AAAA"
    assert http.get("/api/v1/cases", headers=forged).status_code == 401

    refused = http.post("/api/v1/referrals", json=new_order(), headers=audrey)
    assert refused.status_code == 403
    assert "auditor" in refused.json()["detail"]
    other_team = http.get("/api/v1/cases?team=cardiology", headers=ian)
    assert other_team.status_code == 403


def test_same_order_opens_one_case(http, admin):
    order = new_order()
    first = http.post("/api/v1/referrals", json=order, headers=admin)
    assert first.status_code == 201
    case = first.json()
    assert case["case_id"] == f"referral-{order['id']}"
    assert (case["stage"], case["team"], case["task"]["status"]) == (
        "unassigned",
        "cardiology",
        "requested",
    )
    assert case["due_at"] is not None

    again = http.post("/api/v1/referrals", json=order, headers=admin)
    assert again.status_code == 200
    assert again.json()["case_id"] == case["case_id"]
    assert again.json()["opened_at"] == case["opened_at"]


def test_a_closed_order_is_answered_not_reopened(http, admin, cora, open_case):
    order = new_order()
    case = http.post("/api/v1/referrals", json=order, headers=admin).json()
    cancelled = http.post(
        f"/api/v1/cases/{case['case_id']}/actions/cancel",
        json={"reason": "Duplicate of another order"},
        headers=cora,
    )
    assert cancelled.status_code == 200

    def answered():
        response = http.post("/api/v1/referrals", json=order, headers=admin)
        return response if response.json().get("closed") else None

    response = eventually(answered)
    assert response.status_code == 200
    assert response.json()["stage"] == "cancelled"


def test_invalid_fhir_is_rejected_with_its_errors_and_no_phi(http, admin):
    not_fhir = http.post("/api/v1/referrals", json={"resourceType": "Patient"}, headers=admin)
    assert not_fhir.status_code == 422

    order = new_order()
    order["subject"] = {"reference": "Patient/p1", "display": "Jane Q Doe"}
    order["bogusField"] = "Jane Q Doe, born 1950-01-01"
    response = http.post("/api/v1/referrals", json=order, headers=admin)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["bogusField"]
    assert response.json()["detail"].startswith("Invalid request: bogusField: ")
    assert "Jane" not in response.text

    proposal = new_order()
    proposal["intent"] = "proposal"
    proposal["status"] = "completed"
    errors = http.post("/api/v1/referrals", json=proposal, headers=admin).json()["errors"]
    assert {e["loc"][0] for e in errors} == {"intent", "status"}

    no_patient = new_order()
    del no_patient["subject"]
    errors = http.post("/api/v1/referrals", json=no_patient, headers=admin).json()["errors"]
    assert [e["loc"][0] for e in errors] == ["subject"]


def test_care_team_actions_and_their_errors(http, cora, ian, audrey, sam, open_case):
    case = open_case()
    url = f"/api/v1/cases/{case['case_id']}"

    wrong_stage = http.post(
        f"{url}/actions/mark-completed", json={"report": "DiagnosticReport/r1"}, headers=cora
    )
    assert wrong_stage.status_code == 409
    assert "unassigned" in wrong_stage.json()["detail"]

    assert http.post(f"{url}/actions/assign", json={}, headers=ian).status_code == 403
    assert (
        http.post(f"{url}/actions/add-note", json={"text": "hi"}, headers=audrey).status_code == 403
    )
    assert http.post(f"{url}/actions/fly", json={}, headers=cora).status_code == 404
    # A case nobody has answers as another team's would, to anyone who sees one team's cases.
    assert (
        http.post("/api/v1/cases/referral-nope/actions/assign", json={}, headers=cora).status_code
        == 403
    )
    assert http.get("/api/v1/cases/referral-nope", headers=cora).status_code == 403
    assert http.get("/api/v1/cases/referral-nope", headers=audrey).status_code == 404

    claimed = http.post(f"{url}/actions/assign", json={}, headers=cora)
    assert claimed.status_code == 200
    assert (claimed.json()["owner"], claimed.json()["stage"]) == ("cora", "awaiting_scheduling")

    missing = http.post(
        f"{url}/actions/mark-scheduled", json={"appointment_at": in_days(3)}, headers=cora
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["appointment"]
    past = http.post(
        f"{url}/actions/mark-scheduled",
        json={"appointment": "Appointment/a1", "appointment_at": in_days(-2)},
        headers=cora,
    )
    assert past.status_code == 422 and "past" in past.json()["detail"]

    scheduled = http.post(
        f"{url}/actions/mark-scheduled",
        json={"appointment": "Appointment/a1", "appointment_at": in_days(3)},
        headers=cora,
    )
    assert scheduled.status_code == 200
    detail = scheduled.json()
    assert detail["stage"] == "scheduled"
    assert detail["timeline"][-1]["actor"] == "cora"

    assert http.get(url, headers=ian).status_code == 403
    assert http.get(url, headers=audrey).json()["stage"] == "scheduled"
    assert http.get(url, headers=sam).json()["owner"] == "cora"

    history = http.get(f"{url}/history", headers=audrey).json()
    updates = [e["detail"] for e in history if e["type"] == "workflow_execution_update_accepted"]
    assert updates == ["update open_case", "update assign", "update mark_scheduled"]

    done = http.post(f"{url}/actions/cancel", json={"reason": "Patient moved away"}, headers=sam)
    assert done.json()["stage"] == "cancelled"
    closed = eventually(
        lambda: (
            http.post(f"{url}/actions/add-note", json={"text": "late"}, headers=cora).status_code
            == 409
        )
    )
    assert closed


def test_work_queue_filters_and_pages(http, admin, cora, ian, sam, open_case):
    mine = open_case()
    theirs = open_case(IMAGING, priority="urgent")
    http.post(f"/api/v1/cases/{mine['case_id']}/actions/assign", json={}, headers=cora)

    def queue(headers, **params):
        response = http.get("/api/v1/cases", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def ids(page):
        return {item["case_id"] for item in page["items"]}

    assert eventually(lambda: mine["case_id"] in ids(queue(cora, owner="cora")))
    assert mine["case_id"] not in ids(queue(cora, unowned=True))
    cardiology = queue(cora)
    assert theirs["case_id"] not in ids(cardiology)
    assert all(item["team"] == "cardiology" for item in cardiology["items"])
    assert theirs["case_id"] in ids(queue(ian, stage="unassigned", priority="urgent"))
    assert theirs["case_id"] in ids(queue(admin, team="imaging", case_type="referral"))
    assert mine["case_id"] in ids(queue(sam, stage="awaiting_scheduling", stalled=False))
    assert mine["case_id"] not in ids(queue(sam, stalled=True))
    due_soon = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    assert mine["case_id"] in ids(queue(cora, due_before=due_soon))
    assert mine["case_id"] not in ids(queue(cora, due_before=datetime.now(UTC).isoformat()))

    first = queue(admin, page_size=1)
    assert len(first["items"]) == 1 and first["next_page_token"]
    second = queue(admin, page_size=1, page_token=first["next_page_token"])
    assert ids(first).isdisjoint(ids(second))

    injection = http.get("/api/v1/cases", params={"stage": "x' OR 'a'='a"}, headers=admin)
    assert injection.status_code == 422


def test_auditors_read_the_ledger_and_every_read_is_logged(http, cora, ian, audrey, open_case):
    from fhir.resources.R4B.bundle import Bundle

    case = open_case()
    url = f"/api/v1/cases/{case['case_id']}"
    http.post(f"{url}/actions/assign", json={}, headers=cora)
    http.post(
        f"{url}/actions/mark-scheduled",
        headers=cora,
        json={"appointment": "Appointment/a7", "appointment_at": in_days(2)},
    )

    # An action answers first; its ledger entries follow within milliseconds.
    def written():  # 404 until the first entry is stored
        read = http.get(f"{url}/audit", headers=audrey)
        return read.json() if read.status_code == 200 and len(read.json()) == 4 else None

    trail = eventually(written)
    assert [e["kind"] for e in trail] == ["opened", "assigned", "stage_changed", "stage_changed"]
    assert trail[1]["actor"] == "cora" and trail[1]["prev_hash"] == trail[0]["hash"]
    assert http.get(f"{url}/audit", headers=cora).status_code == 200
    assert http.get(f"{url}/audit", headers=ian).status_code == 403
    assert http.get("/api/v1/cases/referral-none/audit", headers=audrey).status_code == 404

    chain = http.get(f"{url}/audit/verify", headers=audrey).json()
    assert chain == {
        "case_id": case["case_id"],
        "intact": True,
        "entries": 4,
        "first_broken_seq": None,
        "problem": None,
        "temporal_checked": True,
        "anchored": True,
        "pending": 0,
    }

    proof = http.get(f"{url}/proof", headers=audrey)
    assert proof.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.model_validate(proof.json())
    kinds = [entry.resource.__resource_type__ for entry in bundle.entry]
    assert kinds.count("AuditEvent") == 4
    assert bundle.meta.tag[0].code == "referral"

    assert http.get("/api/v1/audit/events", headers=cora).status_code == 403
    page = http.get(
        "/api/v1/audit/events",
        headers=audrey,
        params={"actor": "cora", "kind": "assigned", "team": "cardiology"},
    ).json()
    assert case["case_id"] in {e["case_id"] for e in page["items"]}
    assert all(e["actor"] == "cora" for e in page["items"])
    csv_text = http.get("/api/v1/audit/events.csv", headers=audrey, params={"actor": "cora"}).text
    assert csv_text.splitlines()[0].startswith("case_id,seq,at,kind,actor")
    assert case["case_id"] in csv_text

    http.get(url, headers=cora)
    http.get(f"{url}/history", headers=audrey)
    reads = http.get(
        "/api/v1/audit/access", params={"case_id": case["case_id"]}, headers=audrey
    ).json()
    assert {(r["user_id"], r["view"]) for r in reads} >= {
        ("audrey", "audit"),
        ("cora", "audit"),
        ("audrey", "verify"),
        ("audrey", "proof"),
        ("cora", "detail"),
        ("audrey", "history"),
    }
    assert all(r["request_id"] for r in reads)


def test_metrics_by_team_and_for_prometheus(http, cora, ian, audrey, admin, open_case):
    open_case()
    mine = http.get("/api/v1/metrics", params={"group_by": ["team", "case_type"]}, headers=cora)
    assert mine.status_code == 200
    assert [g["group"] for g in mine.json()] == [{"team": "cardiology", "case_type": "referral"}]
    assert mine.json()[0]["cases_opened"] >= 1
    assert (
        http.get("/api/v1/metrics", params={"team": "cardiology"}, headers=ian).status_code == 403
    )
    everyone = http.get("/api/v1/metrics", params={"group_by": "team"}, headers=audrey).json()
    assert {g["group"]["team"] for g in everyone} >= {"cardiology"}

    assert http.get("/metrics").status_code == 401
    wrong = {"Authorization": f"Bearer {SCRAPE_TOKEN}x"}
    assert http.get("/metrics", headers=wrong).status_code == 401
    assert http.get("/metrics", headers=cora).status_code == 403
    prometheus = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
    for credential in (prometheus, audrey, admin):
        scrape = http.get("/metrics", headers=credential)
        assert scrape.status_code == 200
        assert (
            'followthrough_cases_opened{case_type="referral",location="main-clinic",'
            'team="cardiology"}' in scrape.text
        )


def test_the_default_scrape_token_works_in_development_only():
    own = "scrape-" + "x" * 32
    assert scrape_token_accepted(Settings(environment="development"), DEV_METRICS_SCRAPE_TOKEN)
    assert not scrape_token_accepted(Settings(environment="test"), DEV_METRICS_SCRAPE_TOKEN)
    production = Settings(
        environment="production",
        jwt_secret="j" * 40,
        ledger_anchor_key="a" * 40,
        csrf_secret="c" * 40,
    )
    assert not scrape_token_accepted(production, DEV_METRICS_SCRAPE_TOKEN)
    short = production.model_copy(update={"metrics_scrape_token": "too-short"})
    assert not scrape_token_accepted(short, "too-short")
    mine = production.model_copy(update={"metrics_scrape_token": own})
    assert scrape_token_accepted(mine, own) and not scrape_token_accepted(mine, own + "y")


def test_decision_triggers_are_scheduled_and_listed(http, stack, cora, temporal_address):
    import asyncio

    from workers.client import connect

    async def schedule_interval():
        client = await connect(temporal_address)
        handle = client.get_schedule_handle(f"{stack.task_queue}-decision-triggers")
        return (await handle.describe()).schedule.spec.intervals[0].every

    assert asyncio.run(schedule_interval()).total_seconds() == 300
    listed = http.get("/api/v1/triggers", headers=cora).json()
    assert {t["rule"]["name"] for t in listed} == {
        "exception-rate",
        "unowned-backlog",
        "slow-scheduling",
    }


def test_the_ledger_outlives_temporal(http, stack, audrey):
    """A case closed long ago, past Temporal's retention, is still fully auditable."""
    from activities.ledger.anchor import Anchor
    from activities.ledger.append import append_entries
    from tests.api.conftest import ANCHOR_KEY
    from workers.database import make_engine
    from workflows.care.chain import GENESIS, link
    from workflows.care.models import LedgerEntry

    case_id = f"referral-archived-{uuid.uuid4().hex[:8]}"
    entries, previous = [], GENESIS
    for seq, (kind, stage) in enumerate([("opened", "unassigned"), ("cancelled", "cancelled")], 1):
        entry = LedgerEntry(
            case_id=case_id,
            seq=seq,
            at=datetime(2024, 1, seq, tzinfo=UTC),
            kind=kind,
            actor="system",
            role="system",
            summary=kind,
            stage_after=stage,
            case_type="referral",
            team="cardiology",
            pathway="referral",
            pathway_version="2024.01",
            prev_hash=previous,
            case_closed=stage == "cancelled",
        )
        entry.hash = previous = link(previous, entry.content())
        entries.append(entry)
    append_entries(make_engine(stack.database_url), entries, Anchor(ANCHOR_KEY))

    url = f"/api/v1/cases/{case_id}"
    assert http.get(url, headers=audrey).status_code == 404  # Temporal has no such workflow
    assert [e["kind"] for e in http.get(f"{url}/audit", headers=audrey).json()] == [
        "opened",
        "cancelled",
    ]
    chain = http.get(f"{url}/audit/verify", headers=audrey).json()
    assert (chain["intact"], chain["temporal_checked"]) == (True, False)
    bundle = http.get(f"{url}/proof", headers=audrey).json()
    assert bundle["meta"]["tag"][0]["version"] == "2024.01"


def test_caseworkers_open_cases_for_their_own_team_only(http, cora, sam, ian, admin):
    imaging = new_order(IMAGING)  # TEAM_ROUTES sends it to team imaging
    for other_team in (cora, sam):  # a cardiology coordinator and a cardiology supervisor
        refused = http.post("/api/v1/referrals", json=imaging, headers=other_team)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "This order is routed to team imaging; you may open cases for team cardiology only"
        )
    opened = http.post("/api/v1/referrals", json=imaging, headers=ian)
    assert opened.status_code == 201, opened.text  # the refusals left no case behind
    assert opened.json()["team"] == "imaging"

    own = http.post("/api/v1/referrals", json=new_order(), headers=sam)
    assert own.status_code == 201 and own.json()["team"] == "cardiology"
    anyone = http.post("/api/v1/referrals", json=new_order(IMAGING), headers=admin)
    assert anyone.status_code == 201 and anyone.json()["team"] == "imaging"


def test_production_refuses_the_development_anchor_key():
    with pytest.raises(ValueError, match="LEDGER_ANCHOR_KEY"):
        Settings(environment="production", jwt_secret="j" * 40)
    with pytest.raises(ValueError, match="LEDGER_ANCHOR_KEY"):
        Settings(environment="production", jwt_secret="j" * 40, ledger_anchor_key="short")
    assert Settings(
        environment="production",
        jwt_secret="j" * 40,
        ledger_anchor_key="a" * 40,
        csrf_secret="c" * 40,
    )
