"""The processes a benchmark run owns: Temporal dev servers, workers and the API, all on loopback.

Every process is started in its own session and recorded here, so one `close` stops exactly what
this run started (process group by process group), also after Ctrl-C. Logs go to a temp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from workers import dev

BASELINE_QUEUE = "bench-baseline"
REFERRAL_QUEUE = "bench-referral"


@dataclass
class Stack:
    home: Path
    keep: bool = False
    processes: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, keep: bool = False) -> Stack:
        return cls(Path(tempfile.mkdtemp(prefix="followthrough-bench-")), keep)

    def own(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    async def temporal(self, name: str, *, tuned: bool) -> tuple[subprocess.Popen, str]:
        """A headless dev server on a file database (pragmas only matter on a file), with or
        without the project's SQLite pragmas. Answers the server process and its address.

        The dev server picks its internal services' ports itself, by binding port 0; rarely it
        picks the front-end port we chose (free, but not bound yet) and dies at start. Seen once
        here; a second try on a new port is the way out."""
        for attempt in range(3):
            port = dev.free_port()
            server = self._temporal_process(name, port, tuned)
            address = f"127.0.0.1:{port}"
            try:
                await dev.wait_for_temporal(address, within=30)
                # A port clash takes an internal service (and the server) down just after the
                # front end answered: only a server still alive a moment later is up.
                await asyncio.sleep(1.5)
                if server.poll() is None:
                    return server, address
            except Exception:
                if attempt == 2:
                    raise
            self.stop(server)
            # A half-initialised database would fail the next start too.
            for stale in self.home.glob(f"{name}.db*"):
                stale.unlink()
        raise RuntimeError(f"the Temporal dev server {name} did not start; see {self.home}")

    def _temporal_process(self, name: str, port: int, tuned: bool) -> subprocess.Popen:
        command = [
            dev.temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--headless",
            "--log-level",
            "warn",
            "--db-filename",
            str(self.home / f"{name}.db"),
        ]
        if tuned:
            for pragma in dev.SQLITE_PRAGMAS:
                command += ["--sqlite-pragma", pragma]
        return self.own(self._spawn(command, name))

    def baseline_worker(self, address: str, name: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "bench.baseline", "--task-queue", BASELINE_QUEUE]
        return self.own(self._spawn(command, name, {"TEMPORAL_ADDRESS": address}))

    def app_env(self, address: str, api_port: int, jwt_secret: str) -> dict[str, str]:
        """The worker's and the API's configuration, with the EHR link off: this stack has no
        EHR, and left on, every case's Task mirror would retry against nothing, forever (and
        every POST /referrals would first look the patient up there), so the run would measure
        that instead of the referral path."""
        return {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": REFERRAL_QUEUE,
            "DATABASE_URL": f"sqlite:///{self.home / 'app.db'}",
            "DATA_DIR": str(self.home),
            "API_PORT": str(api_port),
            "JWT_SECRET": jwt_secret,
            "EHR_VERIFICATION": "false",
            "EHR_DETECTION_MINUTES": "0",
        }

    def referral_worker(self, env: dict[str, str]) -> subprocess.Popen:
        return self.own(dev.start_worker(env, self.home / "worker.log"))

    def api(self, env: dict[str, str]) -> subprocess.Popen:
        return self.own(dev.start_api(env, int(env["API_PORT"]), self.home / "api.log"))

    async def wait_for_api(self, api: subprocess.Popen, env: dict[str, str]) -> str:
        """The API's base URL, once it answers."""
        base = f"http://127.0.0.1:{env['API_PORT']}"
        await asyncio.to_thread(dev.wait_for_http, f"{base}/healthz", api)
        return base

    def stop(self, *processes: subprocess.Popen) -> None:
        dev.stop(*processes)
        self.processes = [p for p in self.processes if p not in processes]

    def close(self) -> None:
        """Stop everything still running, newest first (clients before the server they use)."""
        dev.stop(*reversed(self.processes))
        self.processes.clear()
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def _spawn(
        self, command: list[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        # The child keeps its own copy of the descriptor; ours can close at once.
        with open(self.home / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )


def rss_bytes(process: subprocess.Popen) -> int:
    """Resident memory of a process and all its children."""
    root = psutil.Process(process.pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total
