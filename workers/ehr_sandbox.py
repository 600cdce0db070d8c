"""The EHR sandbox process: a real FHIR R4 engine (ehr-sandbox/server.mjs) on loopback.

`followthrough dev` starts it with its write log under .data/ehr so orders outlive a restart; the
tests start it on a free port with a log of their own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from workers import dev

SANDBOX = Path(__file__).resolve().parent.parent / "ehr-sandbox"
BASE_PATH = "/fhir/R4"


def node_binary() -> str:
    found = shutil.which("node")
    if not found:
        raise RuntimeError("The EHR sandbox needs Node.js 20+ on PATH")
    if not (SANDBOX / "node_modules").exists():
        raise RuntimeError("The EHR sandbox is not installed: run 'make run' or 'make test'")
    return found


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{BASE_PATH}"


def start_ehr_sandbox(
    port: int, data_dir: Path | None, log: Path | None = None
) -> subprocess.Popen:
    """Start the sandbox on 127.0.0.1:`port`; `data_dir` None keeps its data in memory only."""
    env = {"EHR_PORT": str(port), "EHR_DATA_DIR": str(data_dir) if data_dir else ""}
    return dev._spawn([node_binary(), str(SANDBOX / "server.mjs")], log, env)


def wait_for_ehr_sandbox(port: int, process: subprocess.Popen, timeout: float = 60) -> str:
    """Wait until the sandbox answers (it loads the R4 definitions first); returns its base URL."""
    dev.wait_for_http(f"http://127.0.0.1:{port}/healthz", process, timeout)
    return base_url(port)
