"""The payer sandbox process: a Da Vinci PAS payer (payer-sandbox/server.py) on loopback.

`followthrough dev` starts it with its data under .data/payer so requests and subscriptions
outlive a restart; the tests start it on a free port, in memory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workers import dev

SANDBOX = Path(__file__).resolve().parent.parent / "payer-sandbox"
BASE_PATH = "/fhir"


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{BASE_PATH}"


def start_payer_sandbox(
    port: int, data_dir: Path | None, log: Path | None = None, rules: Path | None = None
) -> subprocess.Popen:
    """Start the sandbox on 127.0.0.1:`port`; `data_dir` None keeps its data in memory only;
    `rules` a JSON file of how it decides each service code (else it approves everything)."""
    env = {
        "PAYER_PORT": str(port),
        "PAYER_HOST": "127.0.0.1",
        "PAYER_DATA_DIR": str(data_dir) if data_dir else "",
        "PAYER_RULES": str(rules) if rules else "",
    }
    return dev._spawn([sys.executable, str(SANDBOX / "server.py")], log, env)


def wait_for_payer_sandbox(port: int, process: subprocess.Popen, timeout: float = 30) -> str:
    """Wait until the sandbox answers; returns its FHIR base URL."""
    dev.wait_for_http(f"http://127.0.0.1:{port}/healthz", process, timeout)
    return base_url(port)
