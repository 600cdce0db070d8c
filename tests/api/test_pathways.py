"""The platform read from the pathway registry: cases of any pathway opened from their FHIR
resource, actions dispatched by the declaration, and the declaration itself published."""

from __future__ import annotations

from api.web import forms
from workflows.care.models import Actor, CaseDetail, OrderSummary, Role, TaskState
from workflows.referral.models import Channel

from .conftest import new_order


def test_a_fhir_resource_opens_its_cases_once(http, admin, cora):
    order = new_order()
    opened = http.post("/api/v1/cases", json=order, headers=admin)
    assert opened.status_code == 201, opened.text
    [case] = opened.json()["cases"]
    assert (case["case_id"], case["case_type"]) == (f"referral-{order['id']}", "referral")
    assert case["created"] is True

    again = http.post("/api/v1/cases", json=order, headers=cora)
    assert again.status_code == 200
    assert [c["case_id"] for c in again.json()["cases"]] == [case["case_id"]]
    assert again.json()["cases"][0]["created"] is False
    # The referral route is the same intake: the same order answers with the same case.
    assert (
        http.post("/api/v1/referrals", json=order, headers=cora).json()["case_id"]
        == (case["case_id"])
    )


def test_what_opens_no_case_is_told_apart(http, admin, audrey):
    note = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    refused = http.post("/api/v1/cases", json=note, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["msg"] == "This Observation opens no case"
    assert refused.json()["detail"] == "Invalid request: body: This Observation opens no case"

    draft = {**new_order(), "status": "draft"}
    invalid = http.post("/api/v1/cases", json=draft, headers=admin)
    assert invalid.status_code == 422
    assert [e["loc"] for e in invalid.json()["errors"]] == [["status"]]

    only = http.post("/api/v1/cases?pathway=nonesuch", json=new_order(), headers=admin)
    assert only.status_code == 422
    assert http.post("/api/v1/cases", json=new_order(), headers=audrey).status_code == 403
    assert http.post("/api/v1/cases", json=[1, 2], headers=admin).status_code == 422


def test_actions_are_the_pathways_own(http, cora, open_case):
    case = open_case()
    unknown = http.post(f"/api/v1/cases/{case['case_id']}/actions/waive", json={}, headers=cora)
    assert unknown.status_code == 404
    assert "mark-scheduled" in unknown.json()["detail"]
    assert http.post("/api/v1/cases/nopathway-1/actions/assign", headers=cora).status_code == 404


def test_pathways_and_their_action_schemas_are_published(http, cora):
    listed = http.get("/api/v1/pathways", headers=cora).json()
    referral = next(p for p in listed if p["case_type"] == "referral")
    stages = {s["name"]: s for s in referral["stages"]}
    assert stages["awaiting_scheduling"]["label"] == "Awaiting scheduling"
    assert stages["completed"]["closed"] and not stages["scheduled"]["closed"]
    assert stages["unable_to_reach"]["task"]["status"] == "failed"
    actions = {a["name"]: a for a in referral["actions"]}
    assert actions["mark-scheduled"]["stages"] == ["awaiting_scheduling"]
    assert actions["mark-scheduled"]["body"]["required"] == ["appointment", "appointment_at"]
    assert "actor" not in actions["add-note"]["body"]["properties"]

    document = http.get("/openapi.json").json()
    body = document["paths"]["/api/v1/cases/{case_id}/actions/{action}"]["post"]["requestBody"]
    variants = {v["title"]: v for v in body["content"]["application/json"]["schema"]["anyOf"]}
    outreach = variants["RecordOutreach"]["properties"]["channel"]
    assert set(outreach["enum"]) == {c.value for c in Channel}  # inlined, no dangling $ref
    assert "$ref" not in str(variants)


def test_forms_follow_the_action_models():
    case_id = "referral-x1"
    by_key = forms.all_forms(case_id)
    outreach = {f.name: f for f in by_key["record-outreach"].fields}
    assert outreach["channel"].kind == "select"
    assert ("left_message", "Left message") in outreach["outcome"].options
    assert (outreach["note"].kind, outreach["note"].required) == ("textarea", False)
    scheduled = {f.name: f for f in by_key["mark-scheduled"].fields}
    assert scheduled["appointment_at"].kind == "datetime"
    assert scheduled["appointment"].placeholder == "Appointment/12345"
    assert scheduled["appointment"].hint == "The FHIR Appointment id from the scheduling system"
    assert by_key["record-documents"].fields[0].kind == "list"
    assert by_key["claim"].fields == () and by_key["reassign"].fields[0].required

    cora = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")
    sam = Actor(user_id="sam", role=Role.SUPERVISOR, team="cardiology")

    case = CaseDetail(
        case_id=case_id,
        case_type="referral",
        stage="awaiting_scheduling",
        task=TaskState(status="accepted", business_status="x"),
        priority="routine",
        team="cardiology",
        owner="cora",
        order=OrderSummary(resource="ServiceRequest/x1", patient="Patient/p", service="s"),
        opened_at="2026-11-02T10:00:00Z",
    )
    keys = [f.key for f in forms.offered(case, cora)]
    assert "claim" not in keys and "reassign" not in keys  # she owns it; not a supervisor
    assert "mark-scheduled" in keys and "mark-completed" not in keys
    assert "reassign" in [f.key for f in forms.offered(case, sam)]
