from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.auth import mint_token
from tests.processes import process_env
from workers import dev
from workers.demo import CARDIOLOGY, IMAGING, service_request
from workers.settings import Settings
from workflows.care.models import Role

SECRET = "test-secret-" + uuid.uuid4().hex
SCRAPE_TOKEN = "test-scrape-" + uuid.uuid4().hex
ANCHOR_KEY = "ledger-anchor-key-of-the-api-tests-0123456789"


@dataclass
class Stack:
    base_url: str
    settings: Settings
    task_queue: str
    database_url: str = ""
    api_log: Path | None = None

    def token(self, user: str, role: Role, team: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {mint_token(self.settings, user=user, role=role, team=team)}"
        }


@pytest.fixture(scope="session")
def stack(temporal_address, tmp_path_factory) -> Iterator[Stack]:
    """The worker and the API as the processes `make run` starts, on free ports."""
    home = tmp_path_factory.mktemp("stack")
    port = dev.free_port()
    task_queue = f"api-{uuid.uuid4().hex[:8]}"
    env = process_env(temporal_address, home, task_queue) | {
        "JWT_SECRET": SECRET,
        "METRICS_SCRAPE_TOKEN": SCRAPE_TOKEN,
        "LEDGER_ANCHOR_KEY": ANCHOR_KEY,
        "ENVIRONMENT": "test",
        "API_PORT": str(port),
        # These tests exercise the API with made-up orders; tests/ehr runs cases against the EHR.
        "EHR_VERIFICATION": "false",
        "EHR_DETECTION_MINUTES": "0",
        # No EHR answers here: pages show the patient's details as unavailable.
        "FHIR_BASE_URL": f"http://127.0.0.1:{dev.free_port()}/fhir/R4",
    }
    worker = dev.start_worker(env, home / "worker.log")
    api = dev.start_api(env, port, home / "api.log")
    try:
        dev.wait_for_http(f"http://127.0.0.1:{port}/healthz", api)
        yield Stack(
            f"http://127.0.0.1:{port}",
            Settings(jwt_secret=SECRET, environment="test"),
            task_queue,
            env["DATABASE_URL"],
            home / "api.log",
        )
    finally:
        dev.stop(api, worker)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def admin(stack: Stack) -> dict[str, str]:
    return stack.token("ada", Role.ADMIN)


@pytest.fixture
def cora(stack: Stack) -> dict[str, str]:
    return stack.token("cora", Role.COORDINATOR, "cardiology")


@pytest.fixture
def sam(stack: Stack) -> dict[str, str]:
    return stack.token("sam", Role.SUPERVISOR, "cardiology")


@pytest.fixture
def ian(stack: Stack) -> dict[str, str]:
    return stack.token("ian", Role.COORDINATOR, "imaging")


@pytest.fixture
def audrey(stack: Stack) -> dict[str, str]:
    return stack.token("audrey", Role.AUDITOR)


def new_order(category: dict = CARDIOLOGY, **kwargs) -> dict:
    return service_request(
        f"t-{uuid.uuid4().hex[:12]}", "p-test", "Cardiology consult", category, **kwargs
    )


@pytest.fixture
def open_case(http, admin):
    def opener(category: dict = CARDIOLOGY, **kwargs) -> dict:
        response = http.post("/api/v1/referrals", json=new_order(category, **kwargs), headers=admin)
        assert response.status_code == 201, response.text
        return response.json()

    return opener


__all__ = ["CARDIOLOGY", "IMAGING", "new_order"]
