"""Browser tests: Debian's Chromium driven by Playwright against the real stack on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

# The same worker + API processes as the API tests (ENVIRONMENT=test, so dev sign-in exists).
from tests.api.conftest import Stack, stack  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-output" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists() or not AXE.exists():
        pytest.fail("Chromium or axe-core is missing: run 'make test', which installs them")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def sign_in(browser: Browser, stack: Stack):  # noqa: F811
    """Open a fresh browser session signed in as a demo person through the sign-in page."""
    contexts = []

    async def signer(user: str) -> Page:
        # bypass_csp only so axe-core can be injected; the pages themselves keep their policy.
        context = await browser.new_context(
            base_url=stack.base_url, viewport={"width": 1366, "height": 900}, bypass_csp=True
        )
        contexts.append(context)
        page = await context.new_page()
        await page.goto("/signin")
        await page.click(f"button[value={user}]")
        await page.wait_for_url("**/queue")
        return page

    yield signer
    for context in contexts:
        await context.close()
