"""The SMS sandbox process: Twilio's Messages API (sms-sandbox/server.py) on loopback.

`followthrough dev` starts it with its texts kept under .data/sms, so they outlive a restart; the
tests start it on a free port, in memory. The account and numbers are the development ones below
unless given.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workers import dev

SANDBOX = Path(__file__).resolve().parent.parent / "sms-sandbox"
# A development account: made-up, like its numbers (555-01xx is reserved for fiction).
DEV_ACCOUNT_SID = "AC" + "f0110" * 6 + "ff"
DEV_AUTH_TOKEN = "followthrough-sms-sandbox-token"
DEV_NUMBERS = ["+16175550101", "+16175550102", "+16175550103"]


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def start_sms_sandbox(
    port: int,
    data_dir: Path | None,
    log: Path | None = None,
    *,
    account_sid: str = DEV_ACCOUNT_SID,
    auth_token: str = DEV_AUTH_TOKEN,
    numbers: list[str] = DEV_NUMBERS,
    inbound_url: str | None = None,
) -> subprocess.Popen:
    """Start the sandbox on 127.0.0.1:`port`; `data_dir` None keeps its texts in memory only;
    `inbound_url` where patients' texts are posted (else set later with POST /sandbox/config)."""
    env = {
        "SMS_PORT": str(port),
        "SMS_HOST": "127.0.0.1",
        "SMS_DATA_DIR": str(data_dir) if data_dir else "",
        "SMS_ACCOUNT_SID": account_sid,
        "SMS_AUTH_TOKEN": auth_token,
        "SMS_NUMBERS": ",".join(numbers),
        "SMS_INBOUND_URL": inbound_url or "",
    }
    return dev._spawn([sys.executable, str(SANDBOX / "server.py")], log, env)


def wait_for_sms_sandbox(port: int, process: subprocess.Popen, timeout: float = 30) -> str:
    """Wait until the sandbox answers; returns its base URL (what TWILIO_BASE_URL names)."""
    dev.wait_for_http(f"{base_url(port)}/healthz", process, timeout)
    return base_url(port)
