"""The care-team web UI in a real browser: what a coordinator, a supervisor and an auditor do."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.api.conftest import Stack, new_order
from tests.ui.conftest import AXE, SHOTS
from workers.demo import IMAGING
from workflows.care.models import Role

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def open_case(stack: Stack, category: dict | None = None, claim_as: str | None = None) -> str:
    """Open a case through the API (as an integration would), optionally claimed by someone."""
    order = new_order(category) if category else new_order()
    admin = stack.token("ada", Role.ADMIN)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        response = await http.post("/api/v1/referrals", json=order, headers=admin)
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        if claim_as:
            answer = await http.post(
                f"/api/v1/cases/{case_id}/actions/assign", json={"owner": claim_as}, headers=admin
            )
            answer.raise_for_status()
            # The claim answers before its ledger entries are stored; wait for them.
            for _ in range(100):
                detail = await http.get(f"/api/v1/cases/{case_id}", headers=admin)
                if detail.json()["ledger_pending"] == 0:
                    break
                await asyncio.sleep(0.05)
    return case_id


def local_input(moment: datetime) -> str:
    """A datetime-local value in the clinic's zone (the form's zone)."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M")


async def serious_violations(page: Page) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_coordinator_claims_schedules_and_sees_the_timeline(stack, sign_in) -> None:
    case_id = await open_case(stack)
    page = await sign_in("cora")
    await page.goto("/queue?view=team")
    row = page.locator("tr", has=page.get_by_role("link", name=case_id))
    await expect(row).to_contain_text("Unowned", timeout=15_000)

    await page.get_by_role("link", name=case_id).click()
    await expect(page.locator(".badge-stage")).to_have_text("Unassigned")
    await page.get_by_role("button", name="Claim this case").click()
    await expect(page.locator(".badge-stage")).to_have_text("Awaiting scheduling")
    await expect(page.locator("#timeline li").first).to_contain_text("cora")

    soon = datetime.now(UTC) + timedelta(days=5)
    await page.get_by_label("Appointment reference").fill("Appointment/ui-1")
    await page.get_by_label(re.compile("Appointment time")).fill(local_input(soon))
    await page.get_by_role("button", name="Mark scheduled").click()
    await expect(page.locator(".badge-stage")).to_have_text("Scheduled")
    await expect(page.locator("#timeline li").first).to_contain_text("Appointment/ui-1")
    # Only what fits the new stage is offered.
    await expect(page.get_by_role("button", name="Mark scheduled")).to_have_count(0)
    await expect(page.get_by_role("button", name="Mark completed")).to_have_count(1)

    await page.get_by_label("Document references").fill(
        "DocumentReference/ui-1 DocumentReference/ui-2"
    )
    await page.get_by_role("button", name="Record documents").click()
    await expect(page.locator("#timeline li").first).to_contain_text(
        "Documents on file: DocumentReference/ui-1, DocumentReference/ui-2"
    )
    references = page.locator(".refs li", has_text="Documents").get_by_role("link")
    await expect(references).to_have_text(["DocumentReference/ui-1", "DocumentReference/ui-2"])
    await page.screenshot(path=SHOTS / "case.png", full_page=True)


async def test_a_rejected_action_shows_its_reason_and_keeps_the_input(stack, sign_in) -> None:
    case_id = await open_case(stack, claim_as="cora")
    page = await sign_in("cora")
    await page.goto(f"/cases/{case_id}")
    await page.get_by_label("Note", exact=True).fill("Half-written note")
    await page.get_by_label("Appointment reference").fill("Appointment/ui-past")
    past = datetime.now(UTC) - timedelta(days=2)
    await page.get_by_label(re.compile("Appointment time")).fill(local_input(past))
    await page.get_by_role("button", name="Mark scheduled").click()
    form = page.locator("#action-mark-scheduled")
    await expect(form.get_by_role("alert")).to_contain_text("in the past")
    await expect(page.get_by_label("Appointment reference")).to_have_value("Appointment/ui-past")
    await expect(page.locator(".badge-stage")).to_have_text("Awaiting scheduling")
    await expect(page.get_by_label("Note", exact=True)).to_have_value("Half-written note")


async def test_an_action_on_a_stale_page_gets_the_cases_reason(stack, sign_in) -> None:
    case_id = await open_case(stack, claim_as="cora")
    page = await sign_in("cora")
    await page.goto(f"/cases/{case_id}")
    # Meanwhile someone else schedules it.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        answer = await http.post(
            f"/api/v1/cases/{case_id}/actions/mark-scheduled",
            json={"appointment": "Appointment/elsewhere", "appointment_at": "2099-01-05T10:00:00Z"},
            headers=stack.token("cora", Role.COORDINATOR, "cardiology"),
        )
        answer.raise_for_status()
    await page.get_by_label("Appointment reference").fill("Appointment/ui-late")
    soon = datetime.now(UTC) + timedelta(days=3)
    await page.get_by_label(re.compile("Appointment time")).fill(local_input(soon))
    await page.get_by_role("button", name="Mark scheduled").click()
    await expect(page.locator("#action-mark-scheduled").get_by_role("alert")).to_contain_text(
        "while the case is scheduled"
    )


async def test_a_coordinator_cannot_open_another_teams_case(stack, sign_in) -> None:
    case_id = await open_case(stack, IMAGING)
    page = await sign_in("cora")
    response = await page.goto(f"/cases/{case_id}")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("team cardiology's cases only")
    await expect(page.locator("form.action")).to_have_count(0)


async def test_an_auditor_sees_the_timeline_and_no_action_buttons(stack, sign_in) -> None:
    case_id = await open_case(stack, claim_as="cora")
    page = await sign_in("audrey")
    await expect(page.get_by_role("heading", name="All cases")).to_be_visible()
    await page.goto(f"/cases/{case_id}")
    await expect(page.locator("#timeline li")).to_have_count(3)  # opened, assigned, stage
    chain = page.get_by_role("region", name="Audit chain")
    await expect(chain).to_contain_text("Intact")
    await expect(chain).to_contain_text("3 ledger entries")
    await expect(page.locator("form.action")).to_have_count(0)
    buttons = await page.get_by_role("button").all_inner_texts()
    assert buttons == ["Sign out"], buttons


async def test_the_queue_follows_the_cases_without_a_reload(stack, sign_in) -> None:
    page = await sign_in("cora")
    await page.goto("/queue?view=mine")
    case_id = await open_case(stack, claim_as="cora")
    await expect(page.get_by_role("link", name=case_id)).to_be_visible(timeout=20_000)


async def test_the_supervisor_reassigns_in_bulk_and_sees_the_dashboard(stack, sign_in) -> None:
    first, second = await open_case(stack), await open_case(stack)
    page = await sign_in("sam")
    await page.goto("/supervisor")
    await expect(page.get_by_role("link", name=second)).to_be_visible(timeout=15_000)
    # Unowned cases come first.
    await expect(page.locator("tbody tr").first).to_contain_text("Unowned")
    await page.get_by_label(f"Select {first}").check()
    await page.get_by_label(f"Select {second}").check()
    await page.get_by_label("Assign selected cases to").fill("cora")
    await page.get_by_role("button", name="Reassign selected").click()
    await expect(page.get_by_role("status")).to_contain_text(f"{first}: assigned to cora")
    await expect(page.get_by_role("status")).to_contain_text(f"{second}: assigned to cora")

    await page.goto("/dashboard")
    await expect(page.locator("canvas[data-chart]")).to_have_count(4)
    drawn = await page.evaluate(
        "() => [...document.querySelectorAll('canvas[data-chart]')]"
        ".every(c => Chart.getChart(c) || c.parentElement.querySelector('.chart-empty'))"
    )
    assert drawn
    await page.screenshot(path=SHOTS / "dashboard.png", full_page=True)


CSRF_IN_PAGE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def signed_in(http: httpx.AsyncClient, user: str) -> str:
    """Sign in through the demo sign-in page, as a browser does; the CSRF token pages now carry."""
    form = await http.get("/signin")
    answer = await http.post(
        "/signin", data={"user": user, "csrf_token": CSRF_IN_PAGE.search(form.text)[1]}
    )
    assert answer.status_code == 303, answer.text
    queue = await http.get("/queue")
    return CSRF_IN_PAGE.search(queue.text)[1]


async def test_a_form_is_taken_only_with_the_csrf_token_of_its_own_session(stack) -> None:
    case_id = await open_case(stack)
    claim = f"/cases/{case_id}/actions/claim"
    admin = stack.token("ada", Role.ADMIN)
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as cora,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as ian,
    ):
        token = await signed_in(cora, "cora")
        assert cora.cookies["ft_csrf"] == token
        ians = await signed_in(ian, "ian")
        session = cora.cookies["ft_session"]

        async def claim_with(cookie: str | None, sent: str | None) -> int:
            cookies = {"ft_session": session} | ({"ft_csrf": cookie} if cookie else {})
            form = {"csrf_token": sent} if sent is not None else {}
            async with httpx.AsyncClient(base_url=stack.base_url, cookies=cookies) as http:
                return (await http.post(claim, data=form)).status_code

        forged = token.split(".")[0] + "." + "0" * 64
        assert await claim_with(None, None) == 403  # no token at all
        assert await claim_with(forged, forged) == 403  # not our signature
        assert await claim_with(ians, ians) == 403  # Ian's, with Cora's session
        assert await claim_with(token, ians) == 403  # the form's is not the cookie's
        detail = await cora.get(f"/api/v1/cases/{case_id}", headers=admin)
        assert detail.json()["owner"] is None

        # Signed out, the token goes with the session; signed in again, the old one is dead.
        out = await cora.post("/signout", data={"csrf_token": token})
        assert out.status_code == 303
        assert "ft_csrf" not in cora.cookies and "ft_session" not in cora.cookies
        assert (await cora.post(claim, data={"csrf_token": token})).status_code == 403
        fresh = await signed_in(cora, "cora")
        assert (await cora.post(claim, data={"csrf_token": token})).status_code == 403

        claimed = await cora.post(claim, data={"csrf_token": fresh})
        assert claimed.status_code == 303, claimed.text
        detail = await cora.get(f"/api/v1/cases/{case_id}", headers=admin)
        assert detail.json()["owner"] == "cora"


async def test_no_serious_accessibility_violations(stack, sign_in) -> None:
    case_id = await open_case(stack, claim_as="cora")
    page = await sign_in("cora")
    for path in ("/queue?view=team", f"/cases/{case_id}"):
        await page.goto(path)
        assert await serious_violations(page) == [], path
    # Keyboard: the first Tab reaches the skip link, and focus is visibly outlined.
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "() => [document.activeElement.textContent.trim(),"
        " getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["Skip to content", "solid"], focused
    # An action works from the keyboard alone.
    await page.get_by_label("Note", exact=True).focus()
    await page.keyboard.type("Called the clinic")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#timeline li").first).to_contain_text("Called the clinic")
    # By now the team queue holds cases in several stages: the screenshot to look at.
    await page.goto("/queue?view=team")
    await page.screenshot(path=SHOTS / "queue.png", full_page=True)
    await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
    await page.goto(f"/cases/{case_id}")
    await page.screenshot(path=SHOTS / "case-tablet.png", full_page=True)
    supervisor = await sign_in("sam")
    for path in ("/supervisor", "/dashboard"):
        await supervisor.goto(path)
        assert await serious_violations(supervisor) == [], path
