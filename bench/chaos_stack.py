"""The processes a chaos run breaks: a Temporal dev server on a file database, the EHR sandbox
with its data on disk, one worker and two API processes, each restartable where it was (same
port, same data), so what a fault interrupts is found again when the process comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api.auth import mint_token
from bench.stack import Stack
from workers import dev
from workers.ehr_sandbox import start_ehr_sandbox, wait_for_ehr_sandbox
from workers.settings import Settings
from workflows.care.models import Role
from workflows.care.queues import QueueKind, queue_name

TASK_QUEUE = "chaos"


@dataclass
class ChaosStack:
    stack: Stack
    temporal_port: int = field(default_factory=dev.free_port)
    ehr_port: int = field(default_factory=dev.free_port)
    api_ports: tuple[int, int] = field(default_factory=lambda: (dev.free_port(), dev.free_port()))
    jwt_secret: str = field(default_factory=lambda: uuid.uuid4().hex * 2)
    clinic_timezone: str = "America/New_York"
    temporal: subprocess.Popen | None = None
    ehr: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    apis: list[subprocess.Popen | None] = field(default_factory=lambda: [None, None])
    settings: dict[str, str] = field(default_factory=dict)  # more configuration, as UPPER_CASE

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def fhir_url(self) -> str:
        return f"http://127.0.0.1:{self.ehr_port}/fhir/R4"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.stack.home / 'app.db'}"

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def env(self, **extra: str) -> dict[str, str]:
        """The worker's and the APIs' configuration: the EHR link on (the outage must matter),
        detection and outreach off (the run drives every case itself), no payer."""
        home = self.stack.home
        return {
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_TASK_QUEUE": TASK_QUEUE,
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(home),
            "JWT_SECRET": self.jwt_secret,
            "FHIR_BASE_URL": self.fhir_url,
            "EHR_VERIFICATION": "true",
            "EHR_DETECTION_MINUTES": "0",
            "OUTREACH_ENABLED": "false",
            "PRIOR_AUTH_RULES": "[]",
            "CLINIC_TIMEZONE": self.clinic_timezone,
            "LOG_LEVEL": "WARNING",
            **self.settings,
            **extra,
        }

    async def start(self) -> None:
        await self.start_temporal()
        await self.start_ehr()
        self.start_worker()
        await self.worker_polling()
        for index in range(len(self.api_ports)):
            await self.start_api(index)

    async def start_temporal(self) -> None:
        db = self.stack.home / "temporal.db"
        self.temporal = self.stack.own(
            dev.start_temporal(db, self.temporal_port, None, self.stack.home / "temporal.log")
        )
        await dev.wait_for_temporal(self.address, within=60)

    async def start_ehr(self) -> None:
        self.ehr = self.stack.own(
            start_ehr_sandbox(self.ehr_port, self.stack.home / "ehr", self.stack.home / "ehr.log")
        )
        await asyncio.to_thread(wait_for_ehr_sandbox, self.ehr_port, self.ehr)

    def start_worker(self) -> None:
        self.worker = self.stack.own(dev.start_worker(self.env(), self.stack.home / "worker.log"))

    async def worker_polling(self) -> None:
        """Wait until the worker polls. One that could not connect (Temporal just restarted) has
        exited, and is started again, as a supervisor would."""
        for _ in range(5):
            if self.worker is not None and await self._polling(self.worker):
                return
            self.kill(self.worker)
            self.start_worker()
        raise RuntimeError(f"no worker would start: see {self.stack.home / 'worker.log'}")

    async def _polling(self, worker: subprocess.Popen, within: float = 60) -> bool:
        """Whether `worker` polls the workflow queue within `within` seconds (the SDK names its
        pollers `pid@host`); False once it has exited."""
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=queue_name(TASK_QUEUE, QueueKind.WORKFLOWS)),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + within
        client: Client | None = None
        while worker.poll() is None and time.monotonic() < deadline:
            try:
                client = client or await Client.connect(self.address)
                pollers = (await client.workflow_service.describe_task_queue(request)).pollers
                if any(poller.identity.startswith(f"{worker.pid}@") for poller in pollers):
                    return True
            except (RPCError, RuntimeError):
                pass  # Temporal not answering yet (RuntimeError: it refused the connection)
            await asyncio.sleep(0.2)
        return False

    async def start_api(self, index: int) -> None:
        port = self.api_ports[index]
        env = self.env(API_PORT=str(port))
        api = self.stack.own(dev.start_api(env, port, self.stack.home / f"api{index}.log"))
        self.apis[index] = api
        await asyncio.to_thread(dev.wait_for_http, f"{self.api_urls[index]}/healthz", api)

    def token(self, user: str, role: Role, team: str | None = None) -> dict[str, str]:
        """A bearer header for the stack's API, signed with its secret."""
        settings = Settings(jwt_secret=self.jwt_secret)
        return {"Authorization": f"Bearer {mint_token(settings, user=user, role=role, team=team)}"}

    def kill(self, process: subprocess.Popen | None) -> None:
        """SIGKILL, the whole process group: nothing gets to finish or clean up."""
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process in self.stack.processes:
            self.stack.processes.remove(process)

    def processes(self) -> dict[str, subprocess.Popen | None]:
        return {
            "temporal": self.temporal,
            "worker": self.worker,
            **{f"api{index}": api for index, api in enumerate(self.apis)},
        }


def now() -> float:
    return time.monotonic()
