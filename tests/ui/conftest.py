"""Browser tests: Debian's Chromium driven by Playwright against the real stack on free ports."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

# The same worker + API processes as the API tests (ENVIRONMENT=test, so dev sign-in exists).
from tests.api.conftest import SECRET, Stack, stack  # noqa: F401
from workers import dev

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-output" / "ui"
IDENTITY = ROOT / "identity-sandbox"
CLIENT_ID, CLIENT_SECRET = "followthrough-web", "identity-sandbox-client-secret"
API_AUDIENCE = "https://followthrough.test/api"
# The provider's accounts, their role and team given in claims named as the app is told
# (OIDC_ROLE_CLAIM=groups, OIDC_TEAM_CLAIM=department).
ACCOUNTS = {
    "cora": {"role": "coordinator", "team": "cardiology"},
    "audrey": {"role": "auditor"},
    "nobody": {},
}
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


@dataclass
class OidcStack:
    base_url: str  # an API replica that signs people in through the provider
    issuer: str

    def access_token(self, audience: str) -> str:
        """A machine caller's access token from the provider (client credentials)."""
        import httpx

        answer = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": "api", "resource": audience},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        answer.raise_for_status()
        return answer.json()["access_token"]


def start_identity_provider(port: int, api_url: str, log: Path) -> subprocess.Popen:
    node = shutil.which("node")
    if not node or not (IDENTITY / "node_modules").exists():
        pytest.fail("node or the identity sandbox is missing: run 'make test', which installs them")
    env = {
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URI": f"{api_url}/signin/callback",
        "OIDC_SIGNED_OUT_URI": f"{api_url}/signin",
        "OIDC_ACCOUNTS": json.dumps(ACCOUNTS),
        "OIDC_ROLE_CLAIM": "groups",
        "OIDC_TEAM_CLAIM": "department",
    }
    return dev._spawn([node, str(IDENTITY / "server.mjs")], log, env)


@pytest.fixture(scope="session")
def oidc_stack(stack: Stack, temporal_address: str, tmp_path_factory) -> Iterator[OidcStack]:  # noqa: F811
    """A certified OpenID Connect provider on loopback, and an API replica (beside the stack's,
    same Temporal, task queue and database) that signs people in through it."""
    home = tmp_path_factory.mktemp("oidc")
    provider_port, api_port = dev.free_port(), dev.free_port()
    issuer, api_url = f"http://127.0.0.1:{provider_port}", f"http://127.0.0.1:{api_port}"
    provider = start_identity_provider(provider_port, api_url, home / "provider.log")
    api = None
    try:
        dev.wait_for_http(f"{issuer}/.well-known/openid-configuration", provider)
        env = {
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_TASK_QUEUE": stack.task_queue,
            "DATABASE_URL": stack.database_url,
            "DATA_DIR": str(home),
            "JWT_SECRET": SECRET,
            "CSRF_SECRET": "csrf-key-of-the-test-replica-" + CLIENT_SECRET,
            "ENVIRONMENT": "test",
            "EHR_VERIFICATION": "false",
            "EHR_DETECTION_MINUTES": "0",
            "OIDC_ISSUER": issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_ROLE_CLAIM": "groups",
            "OIDC_TEAM_CLAIM": "department",
            "OIDC_API_AUDIENCE": API_AUDIENCE,
        }
        api = dev.start_api(env, api_port, home / "api.log")
        dev.wait_for_http(f"{api_url}/healthz", api)
        yield OidcStack(api_url, issuer)
    finally:
        dev.stop(*(p for p in (api, provider) if p))
