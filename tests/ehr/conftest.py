"""A worker and an API wired to the EHR sandbox, as `make run` wires them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass

import pytest
from temporalio.service import RPCError

from api.auth import mint_token
from tests.processes import process_env
from workers import dev
from workers.client import connect
from workers.settings import Settings
from workflows.care.models import Role

SECRET = "ehr-test-secret-" + uuid.uuid4().hex
NOTIFY_TOKEN = "ehr-notify-" + uuid.uuid4().hex
PAYER_TOKEN = "payer-notify-" + uuid.uuid4().hex


@dataclass
class EhrStack:
    base_url: str
    ehr_url: str
    temporal_address: str
    task_queue: str
    settings: Settings

    def token(self, user: str, role: Role, team: str | None = None) -> dict[str, str]:
        token = mint_token(self.settings, user=user, role=role, team=team)
        return {"Authorization": f"Bearer {token}"}

    @property
    def integration(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {NOTIFY_TOKEN}"}


async def close_cases(temporal_address: str, task_queue: str) -> None:
    """Terminate the cases left open: other suites' queues and dashboards share the namespace."""
    client = await connect(temporal_address)
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        with suppress(RPCError):  # visibility lags: it may have closed meanwhile
            await client.get_workflow_handle(execution.id).terminate("tests finished")


@pytest.fixture(scope="package")
def ehr_stack(temporal_address, ehr_url, payer_url, tmp_path_factory) -> Iterator[EhrStack]:
    home = tmp_path_factory.mktemp("ehr-stack")
    port = dev.free_port()
    task_queue = f"ehr-{uuid.uuid4().hex[:8]}"
    env = process_env(temporal_address, home, task_queue) | {
        "JWT_SECRET": SECRET,
        "ENVIRONMENT": "test",
        "API_PORT": str(port),
        "FHIR_BASE_URL": ehr_url,
        "FHIR_NOTIFICATION_TOKEN": NOTIFY_TOKEN,
        "EHR_DETECTION_MINUTES": "0",  # the tests run detection themselves, when they mean to
        "PAYER_BASE_URL": payer_url,
        "PAYER_NOTIFICATION_TOKEN": PAYER_TOKEN,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",  # where the payer sends its notifications
    }
    worker = dev.start_worker(env, home / "worker.log")
    api = dev.start_api(env, port, home / "api.log")
    try:
        dev.wait_for_http(f"http://127.0.0.1:{port}/healthz", api)
        settings = Settings(
            jwt_secret=SECRET,
            environment="test",
            temporal_task_queue=task_queue,
            payer_base_url=payer_url,
        )
        yield EhrStack(f"http://127.0.0.1:{port}", ehr_url, temporal_address, task_queue, settings)
    finally:
        asyncio.run(close_cases(temporal_address, task_queue))
        dev.stop(api, worker)
