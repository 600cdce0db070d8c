"""With the EHR down, the case page and the queue still work and say the patient is unavailable."""

from __future__ import annotations

import httpx

from api.web.session import SESSION_COOKIE

from .conftest import Stack


def page_as_cora(stack: Stack) -> httpx.Client:
    token = stack.token("cora", "coordinator", "cardiology")["Authorization"].split()[1]
    return httpx.Client(base_url=stack.base_url, cookies={SESSION_COOKIE: token}, timeout=30)


def test_the_case_page_says_the_patient_details_are_unavailable(stack, open_case, http, cora):
    case = open_case()

    with page_as_cora(stack) as browser:
        case_page = browser.get(f"/cases/{case['case_id']}")
        queue = browser.get("/queue/rows?view=team")
    card = http.get(f"/api/v1/cases/{case['case_id']}/patient", headers=cora)

    assert case_page.status_code == 200
    assert "Patient details are unavailable" in case_page.text
    assert "Patient/p-test" in case_page.text  # the reference the case holds, still shown
    assert case["case_id"] in case_page.text
    assert queue.status_code == 200 and case["case_id"] in queue.text
    assert card.status_code == 200
    assert card.json() == {
        "reference": "Patient/p-test",
        "available": False,
        "name": None,
        "birth_date": None,
        "phone": None,
        "language": None,
    }
