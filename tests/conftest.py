from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.postgres import database_url
from workers import dev, ehr_sandbox, payer_sandbox
from workers.client import register_search_attributes
from workers.database import make_engine
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


def eventually(check, timeout: float = 10.0, interval: float = 0.2):
    """Visibility is eventually consistent: retry `check` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)
