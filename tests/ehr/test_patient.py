"""The care team sees who the patient is, read from the EHR at view time and logged as read."""

from __future__ import annotations

import httpx
import pytest

from api.web.session import SESSION_COOKIE
from workflows.care.models import Role

from .conftest import EhrStack
from .records import Ehr, new_id
from .test_pathway import category

NAME = ("Philippa", "Quenneville")
BORN = "1957-03-14"
PHONE = "+1 617 555 0143"


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def http(ehr_stack: EhrStack):
    with httpx.Client(base_url=ehr_stack.base_url, timeout=30) as client:
        yield client


def signed_in(stack: EhrStack, user: str, role: Role, team: str | None = None) -> httpx.Client:
    """A browser of the web UI, signed in as `user`."""
    token = stack.token(user, role, team)["Authorization"].removeprefix("Bearer ")
    return httpx.Client(base_url=stack.base_url, cookies={SESSION_COOKIE: token}, timeout=30)


def open_case(http, stack: EhrStack, ehr: Ehr) -> str:
    pid = new_id("pat")
    ehr.put(
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"use": "official", "given": [NAME[0]], "family": NAME[1]}],
            "birthDate": BORN,
            "telecom": [{"system": "phone", "value": PHONE, "use": "mobile"}],
            "communication": [
                {"language": {"coding": [{"code": "fr", "display": "French"}]}, "preferred": True}
            ],
        }
    )
    order = ehr.order(f"Patient/{pid}", category=category(), code={"text": "Holter monitor"})
    taken = http.post(
        "/api/v1/fhir/notifications", json={"reference": order}, headers=stack.integration
    )
    assert taken.status_code == 202, taken.text
    return taken.json()["results"][0]["case_ids"][0]


def reads(http, stack: EhrStack, case_id: str) -> list[tuple[str, str]]:
    audrey = stack.token("audrey", Role.AUDITOR)
    rows = http.get("/api/v1/audit/access", params={"case_id": case_id}, headers=audrey).json()
    return sorted((r["user_id"], r["view"]) for r in rows)


def test_a_coordinator_sees_whom_to_call_and_an_auditor_only_the_name(http, ehr_stack, ehr):
    case_id = open_case(http, ehr_stack, ehr)
    cora = signed_in(ehr_stack, "cora", Role.COORDINATOR, "cardiology")
    audrey = signed_in(ehr_stack, "audrey", Role.AUDITOR)

    coordinator_page = cora.get(f"/cases/{case_id}")
    auditor_page = audrey.get(f"/cases/{case_id}")

    assert coordinator_page.status_code == 200
    for shown in ("Philippa Quenneville", "Born Mar 14, 1957", PHONE, "Prefers French"):
        assert shown in coordinator_page.text
    assert "Philippa Quenneville" in auditor_page.text
    for hidden in ("1957", PHONE, "French"):
        assert hidden not in auditor_page.text
    assert ("audrey", "patient") in reads(http, ehr_stack, case_id)
    assert ("cora", "patient") in reads(http, ehr_stack, case_id)


def test_the_api_answers_the_patient_card_by_role(http, ehr_stack, ehr):
    case_id = open_case(http, ehr_stack, ehr)

    card = http.get(
        f"/api/v1/cases/{case_id}/patient",
        headers=ehr_stack.token("cora", Role.COORDINATOR, "cardiology"),
    ).json()
    outsider = http.get(
        f"/api/v1/cases/{case_id}/patient",
        headers=ehr_stack.token("ian", Role.COORDINATOR, "imaging"),
    )

    assert card | {"reference": ""} == {
        "reference": "",
        "available": True,
        "name": "Philippa Quenneville",
        "birth_date": BORN,
        "phone": PHONE,
        "language": "French",
    }
    assert outsider.status_code == 403


def test_the_team_queue_names_the_patient_and_service_from_one_read(http, ehr_stack, ehr):
    case_id = open_case(http, ehr_stack, ehr)
    cora = signed_in(ehr_stack, "cora", Role.COORDINATOR, "cardiology")
    ian = signed_in(ehr_stack, "ian", Role.COORDINATOR, "imaging")
    queue = f"/queue/rows?view=team&q={case_id.removeprefix('referral-')}"

    first = cora.get(queue)
    again = cora.get(queue)
    other_team = ian.get("/queue/rows?view=team")

    for page in (first, again):
        assert case_id in page.text
        assert "Philippa Quenneville" in page.text and "Holter monitor" in page.text
    assert "Philippa" not in other_team.text
    # The second page came from memory: the EHR was read, and logged, once for Cora.
    assert reads(http, ehr_stack, case_id).count(("cora", "queue-patient")) == 1
