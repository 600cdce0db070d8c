from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.postgres import database_url
from workers import dev, ehr_sandbox, payer_sandbox
from workers import sms_sandbox as sms_process
from workers.client import register_search_attributes
from workers.database import make_engine
from workers.mail_sandbox import MailSandbox
from workers.postgres import postgres_server

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def _binary(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if not found:
        pytest.fail(f"{name} not found: run 'make test', which installs it")
    return found


# One time-skipping server per test module: what a module leaves on it (a timer, an activity
# still scheduled) cannot hold back the clock for another module's sleeps.
@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        # Plain payloads: scenario tests replay the env's histories with the plain converter.
        # Encryption is tested end to end (every worker and API process encrypts) and in
        # tests/workers/test_codec.py, whose clients on this env encrypt.
        data_converter=pydantic_data_converter,
        test_server_existing_path=_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    async with env:
        yield env


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port, started once for the session."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    """The app database, migrated: SQLite, or each kind for tests marked `on_both_databases`."""
    engine = make_engine(database_url(getattr(request, "param", "sqlite"), request, tmp_path))
    yield engine
    engine.dispose()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(time_skipping: WorkflowEnvironment) -> Client:
    return time_skipping.client


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory) -> Iterator[str]:
    """A real Temporal dev server on a free loopback port, for end-to-end tests."""
    port = dev.free_port()
    log = tmp_path_factory.mktemp("temporal") / "temporal.log"
    server = dev.start_temporal(None, port, None, log)
    address = f"127.0.0.1:{port}"
    try:
        asyncio.run(dev.wait_for_temporal(address))
        yield address
    finally:
        dev.stop(server)


@pytest.fixture(scope="session")
def ehr_url(tmp_path_factory) -> Iterator[str]:
    """The EHR sandbox (a real FHIR R4 engine) on a free loopback port; its base URL."""
    port = dev.free_port()
    home = tmp_path_factory.mktemp("ehr")
    server = ehr_sandbox.start_ehr_sandbox(port, home / "data", home / "ehr.log")
    try:
        yield ehr_sandbox.wait_for_ehr_sandbox(port, server)
    finally:
        dev.stop(server)


@pytest.fixture(scope="session")
def payer_url(tmp_path_factory) -> Iterator[str]:
    """The payer sandbox (Da Vinci PAS) on a free loopback port, data in memory; its FHIR base
    URL (http://127.0.0.1:<port>/fhir). Tests set its rules (PUT /sandbox/rules)."""
    port = dev.free_port()
    log = tmp_path_factory.mktemp("payer") / "payer.log"
    server = payer_sandbox.start_payer_sandbox(port, None, log)
    try:
        yield payer_sandbox.wait_for_payer_sandbox(port, server)
    finally:
        dev.stop(server)


@pytest.fixture(scope="session")
def payer_sandbox_http(payer_url: str) -> Iterator[httpx.Client]:
    """The payer sandbox's test controls (/sandbox/...) and its FHIR API (/fhir/...)."""
    with httpx.Client(base_url=payer_url.removesuffix("/fhir"), timeout=15) as client:
        yield client


@dataclass
class SmsSandbox:
    """The Twilio-protocol SMS sandbox, running: its account, its numbers, and its controls."""

    base_url: str
    account_sid: str
    auth_token: str
    numbers: list[str]
    http: httpx.Client = field(repr=False)

    def messages(self) -> list[dict[str, Any]]:
        """Every message sent (Twilio's JSON), with `status_callback` and the `callbacks` made."""
        return self.http.get("/sandbox/messages").json()

    def inbound(self) -> list[dict[str, Any]]:
        """Every text patients sent, with the webhook's answer (`webhook`) once delivered."""
        return self.http.get("/sandbox/inbound").json()

    def reply(self, from_: str, to: str, body: str) -> str:
        """The patient at `from_` texts our number `to`; the signed webhook follows in the
        background (so an app served in the caller's own event loop can answer it). Returns
        the inbound message's sid."""
        answer = self.http.post("/sandbox/reply", json={"from": from_, "to": to, "body": body})
        assert answer.status_code == 202, answer.text
        return answer.json()["sid"]

    def unreachable(self, number: str) -> None:
        """Messages to `number` end undelivered, error 30003."""
        assert self.http.post("/sandbox/unreachable", json={"number": number}).is_success

    def set_inbound_url(self, url: str | None) -> None:
        assert self.http.post("/sandbox/config", json={"inbound_url": url}).is_success

    def settings(self) -> dict[str, Any]:
        """The TWILIO_* settings that send through this sandbox (Settings.model_copy(update=))."""
        return {
            "twilio_base_url": self.base_url,
            "twilio_account_sid": self.account_sid,
            "twilio_auth_token": self.auth_token,
            "twilio_from_numbers": list(self.numbers),
        }


@pytest.fixture(scope="session")
def sms_sandbox(tmp_path_factory) -> Iterator[SmsSandbox]:
    """The SMS sandbox (Twilio's Messages API) on a free loopback port, data in memory, with a
    test account and three sender numbers of its own."""
    port = dev.free_port()
    log = tmp_path_factory.mktemp("sms") / "sms.log"
    account_sid, token = "AC" + uuid.uuid4().hex, "sms-test-" + uuid.uuid4().hex
    numbers = ["+16175550171", "+16175550172", "+16175550173"]
    server = sms_process.start_sms_sandbox(
        port, None, log, account_sid=account_sid, auth_token=token, numbers=numbers
    )
    try:
        base_url = sms_process.wait_for_sms_sandbox(port, server)
        with httpx.Client(base_url=base_url, timeout=15) as http:
            yield SmsSandbox(base_url, account_sid, token, numbers, http)
    finally:
        dev.stop(server)


@pytest.fixture(scope="session")
def mail_sandbox(tmp_path_factory) -> Iterator[MailSandbox]:
    """A local SMTP server (aiosmtpd) on a free loopback port that requires STARTTLS with a
    certificate made at start: `host`, `port`, `ca_file`, `messages()`, and `settings()` (the
    SMTP_* settings that send to it, the certificate trusted)."""
    sandbox = MailSandbox(tls_dir=tmp_path_factory.mktemp("mail"), starttls=True).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def eventually(check, timeout: float = 10.0, interval: float = 0.2):
    """Visibility is eventually consistent: retry `check` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)
