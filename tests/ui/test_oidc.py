"""Sign-in through a real OpenID Connect provider (the certified oidc-provider, on loopback), in
the browser: a coordinator lands on their queue; sign-out ends the session; a sign-in this
browser did not start is refused; the API takes the provider's access tokens for its audience
only."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.ui.conftest import API_AUDIENCE, SHOTS, OidcStack

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def sign_in_at_provider(browser: Browser, oidc_stack: OidcStack, login: str) -> Page:
    context = await browser.new_context(base_url=oidc_stack.base_url)
    page = await context.new_page()
    await page.goto("/signin")
    await page.click("#sign-in-oidc")
    # The provider's own sign-in page (its development login accepts any password).
    await page.wait_for_url(f"{oidc_stack.issuer}/**")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "any password")
    await page.click("button[type=submit]")
    return page


async def test_a_coordinator_signs_in_at_the_provider_and_lands_on_their_queue(
    browser, oidc_stack
) -> None:
    page = await sign_in_at_provider(browser, oidc_stack, "cora")
    await page.wait_for_url(f"{oidc_stack.base_url}/queue")
    await expect(page.locator(".who-name")).to_have_text("cora")
    await expect(page.locator(".who-role")).to_have_text("Coordinator · Cardiology")
    await expect(page.locator("h1")).to_be_visible()
    await page.screenshot(path=str(SHOTS / "oidc-signed-in.png"))
    session = next(c for c in await page.context.cookies() if c["name"] == "ft_session")
    assert session["httpOnly"] and session["expires"] > 0

    await page.click("text=Sign out")
    await page.wait_for_url("**/signin?signed_out=true")
    await expect(page.locator("#provider-sign-out")).to_have_attribute(
        "href",
        f"{oidc_stack.issuer}/session/end?client_id=followthrough-web"
        f"&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A{oidc_stack.base_url.rsplit(':', 1)[1]}%2Fsignin",
    )
    await page.goto("/queue")
    await page.wait_for_url("**/signin")
    await page.context.close()


async def test_an_account_without_a_role_is_not_signed_in(browser, oidc_stack) -> None:
    page = await sign_in_at_provider(browser, oidc_stack, "nobody")
    await page.wait_for_url("**/signin/callback?**")
    await expect(page.locator("body")).to_contain_text("no Followthrough role")
    assert not [c for c in await page.context.cookies() if c["name"] == "ft_session"]
    await page.context.close()


async def test_a_sign_in_this_browser_did_not_start_is_refused(oidc_stack) -> None:
    # Login CSRF: an attacker's own code and state, sent to someone else's browser.
    async with httpx.AsyncClient(base_url=oidc_stack.base_url) as http:
        answer = await http.get(
            "/signin/callback", params={"code": "attackers", "state": "attackers"}
        )
        assert answer.status_code == 400 and "not started here" in answer.text
        assert "ft_session" not in answer.cookies
        # The old way in, a JWT posted with no state, is gone.
        assert (await http.post("/signin/token", data={"token": "x"})).status_code in (404, 405)


async def test_the_api_takes_the_providers_access_tokens_for_its_audience_only(oidc_stack) -> None:
    async with httpx.AsyncClient(base_url=oidc_stack.base_url) as http:
        right = oidc_stack.access_token(API_AUDIENCE)
        answer = await http.get(
            "/api/v1/audit/events", headers={"Authorization": f"Bearer {right}"}
        )
        assert answer.status_code == 200, answer.text

        wrong = oidc_stack.access_token("https://another-service.test")
        refused = await http.get(
            "/api/v1/audit/events", headers={"Authorization": f"Bearer {wrong}"}
        )
        assert refused.status_code == 401
        assert "audience" in refused.json()["detail"].lower()
