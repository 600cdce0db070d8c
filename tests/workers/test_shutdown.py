"""SIGTERM is a graceful stop: the worker lets the activity it is running finish, the API lets
the request it is serving finish, and each process then exits cleanly."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from temporalio.client import WorkflowUpdateStage

from api.auth import mint_token
from tests.ehr.records import Ehr
from tests.processes import process_env
from tests.workflows.referral_kit import COORDINATOR, booked, linked_referral, referral_input
from workers import dev
from workers.client import connect
from workers.settings import Settings
from workflows.care.models import EventKind, Role
from workflows.referral.models import Assign
from workflows.referral.workflow import ReferralWorkflow

GRACE = 10  # seconds; the slow answers below take 3


class SlowEhr:
    """A proxy to the EHR that holds Appointment reads for a few seconds, and tells whether the
    reader was still there to take the answer."""

    def __init__(self, upstream: str, delay: float = 3) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.holding = threading.Event()
        self.answered: list[bool] = []  # per held request: the reader got the whole answer
        self.done = threading.Event()  # a held request was answered, or found its reader gone
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("/fhir/R4", 1)[-1]
                upstream = httpx.request(
                    self.command,
                    proxy.upstream + path,
                    content=body,
                    headers={"content-type": self.headers.get("content-type", "")},
                    timeout=10,
                )
                held = self.command == "GET" and path.startswith("/Appointment/")
                if held:
                    proxy.holding.set()
                    time.sleep(proxy.delay)
                answered = self._answer(upstream) if not held or self._reader_there() else False
                if held:
                    proxy.answered.append(answered)
                    proxy.done.set()

            def _reader_there(self) -> bool:
                # A reader that gave up has closed its end: the socket reads as end of file.
                ready, _, _ = select.select([self.connection], [], [], 0)
                return not ready or self.connection.recv(1, socket.MSG_PEEK) != b""

            def _answer(self, upstream: httpx.Response) -> bool:
                try:
                    self.send_response(upstream.status_code)
                    self.send_header("content-type", upstream.headers.get("content-type", ""))
                    self.send_header("content-length", str(len(upstream.content)))
                    self.end_headers()
                    self.wfile.write(upstream.content)
                    self.wfile.flush()
                    return True
                except OSError:
                    return False

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir/R4"

    def __enter__(self) -> SlowEhr:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_ehr(ehr_url: str) -> Iterator[SlowEhr]:
    with SlowEhr(ehr_url) as proxy:
        yield proxy


def _exit_code_within(process, seconds: float) -> int | None:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


async def test_sigterm_lets_the_running_activity_finish(
    temporal_address, ehr_url, slow_ehr, tmp_path
):
    ehr = Ehr(ehr_url)
    patient = ehr.patient()
    order = ehr.order(patient)
    visit = ehr.appointment(patient, datetime.now(UTC) + timedelta(days=3), order)
    task_queue = f"shutdown-{uuid.uuid4().hex[:8]}"
    env = process_env(temporal_address, tmp_path, task_queue) | {
        "FHIR_BASE_URL": slow_ehr.url,
        "EHR_VERIFICATION": "true",
        "EHR_DETECTION_MINUTES": "0",
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    client = await connect(temporal_address)
    case = linked_referral(order, patient)
    first = dev.start_worker(env, tmp_path / "worker-1.log")
    try:
        handle = await client.start_workflow(
            ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
        )
        await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        claim = booked(visit)
        await handle.start_update(
            ReferralWorkflow.mark_scheduled,
            claim,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        # appointment_booked is now reading the appointment, which the EHR holds for 3 s.
        assert await asyncio.to_thread(slow_ehr.holding.wait, 30)
        stopped_at = time.monotonic()
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(_exit_code_within, first, GRACE + 5)
        took = time.monotonic() - stopped_at
    finally:
        dev.stop(first)
    assert await asyncio.to_thread(slow_ehr.done.wait, slow_ehr.delay + 2)
    assert slow_ehr.answered == [True]  # the activity waited for its answer
    assert code == 0
    assert took < GRACE

    second = dev.start_worker(env, tmp_path / "worker-2.log")
    try:
        for _ in range(150):
            detail = await handle.query(ReferralWorkflow.detail)
            if detail.stage == "scheduled":
                break
            await asyncio.sleep(0.2)
    finally:
        dev.stop(second)
    assert detail.stage == "scheduled"
    # Both stops were clean: no abort while the interpreter finalized, as a supervisor sees it.
    assert second.returncode == 0
    for log in ("worker-1.log", "worker-2.log"):
        assert "Fatal Python error" not in (tmp_path / log).read_text()
    verified = [event for event in detail.timeline if event.kind == EventKind.VERIFIED]
    assert [event.summary for event in verified] == [
        f"Verified in the EHR: Appointment/{visit['id']}"
    ]
    # Verified once: the finished activity's answer was kept, not run again.
    assert slow_ehr.answered == [True]


async def test_sigterm_lets_the_request_under_way_finish(temporal_address, tmp_path):
    task_queue = f"shutdown-api-{uuid.uuid4().hex[:8]}"
    port = dev.free_port()
    secret = "test-secret-" + uuid.uuid4().hex
    env = process_env(temporal_address, tmp_path, task_queue) | {
        "JWT_SECRET": secret,
        "ENVIRONMENT": "test",
        "API_PORT": str(port),
        "EHR_VERIFICATION": "false",
        "EHR_DETECTION_MINUTES": "0",
        "API_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    # A case no worker is answering for: reading it waits out the API's query timeout (5 s).
    client = await connect(temporal_address)
    case = referral_input()
    await client.start_workflow(ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue)
    token = mint_token(Settings(jwt_secret=secret, environment="test"), user="ada", role=Role.ADMIN)
    api = dev.start_api(env, port, tmp_path / "api.log")
    try:
        await asyncio.to_thread(dev.wait_for_http, f"http://127.0.0.1:{port}/healthz", api)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            reading = asyncio.create_task(
                http.get(
                    f"/api/v1/cases/{case.case_id}",
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            await asyncio.sleep(1.5)
            assert not reading.done()
            api.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            response = await reading
            code = await asyncio.to_thread(_exit_code_within, api, GRACE + 5)
            took = time.monotonic() - stopped_at
    finally:
        dev.stop(api)
        await client.get_workflow_handle(case.case_id).terminate()
    assert response.status_code == 503, response.text
    assert "no worker is answering" in response.json()["detail"]
    # uvicorn drains, then ends by the signal it was sent, as a supervisor expects.
    assert code == -signal.SIGTERM
    assert took < GRACE
    assert "graceful shutdown exceeded" not in (tmp_path / "api.log").read_text()
