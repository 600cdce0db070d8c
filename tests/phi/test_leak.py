"""No PHI where it is not needed: full cases for a patient with distinctive details, then every
place they could have leaked to is searched for them.

Each test runs its own Temporal dev server (its database in a file), worker and API against the
EHR sandbox, runs every pathway (referral cases to each end, detection, decision triggers), reads
the cases as the care team and auditors do, and scans: the Temporal database, the API's and the
worker's logs, the app database (but the ledger's free-text columns, which the README names as
PHI-bearing), and every workflow id and search attribute. With encryption on nothing is found;
with it off the same scan finds the patient in Temporal's database, which shows the scan looks
where PHI would be.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.auth import mint_token
from api.web.session import SESSION_COOKIE
from tests.ehr.records import Ehr, new_id
from tests.processes import process_env
from workers import dev
from workers.client import connect, data_converter
from workers.demo import CARDIOLOGY, service_request
from workers.settings import Settings
from workflows.care.models import Role
from workflows.detection.workflow import Detection, EhrDetectionWorkflow
from workflows.triggers.models import DEFAULT_RULES, Evaluation
from workflows.triggers.workflow import DecisionTriggersWorkflow

GIVEN, FAMILY = "Zebulon", "Quixtable"
MRN = "QX-558301"
PHONE = "617-555-0199"
BORN = "1951-08-17"
PHRASE = "rhubarb telescope"
SECRETS = [GIVEN, FAMILY, MRN, PHONE, BORN, PHRASE]
# The audit ledger keeps what the care team wrote (notes, reasons) and the summaries built from
# it: PHI-bearing by design, documented in the README, and left out of the scan.
PHI_BEARING = {("ledger_entry", "summary"), ("ledger_entry", "details")}
SECRET = "leak-test-" + uuid.uuid4().hex
NOTIFY = "leak-notify-" + uuid.uuid4().hex
LATER = datetime.now(UTC) + timedelta(days=3)


@dataclass
class LeakStack:
    home: Path
    base_url: str
    temporal_address: str
    task_queue: str
    settings: Settings

    def token(self, user: str, role: Role, team: str | None = None) -> dict[str, str]:
        token = mint_token(self.settings, user=user, role=role, team=team)
        return {"Authorization": f"Bearer {token}"}


def start_stack(home: Path, ehr_url: str, encrypted: bool) -> Iterator[LeakStack]:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(
        jwt_secret=SECRET,
        environment="test",
        payload_keys={"leak-1": key},
        payload_key_id="leak-1",
        payload_encryption=encrypted,
    )
    temporal_port, api_port = dev.free_port(), dev.free_port()
    address = f"127.0.0.1:{temporal_port}"
    task_queue = f"leak-{uuid.uuid4().hex[:8]}"
    temporal = dev.start_temporal(home / "temporal.db", temporal_port, None, home / "temporal.log")
    processes = [temporal]
    env = process_env(address, home, task_queue) | {
        "JWT_SECRET": SECRET,
        "ENVIRONMENT": "test",
        "API_PORT": str(api_port),
        "FHIR_BASE_URL": ehr_url,
        "FHIR_NOTIFICATION_TOKEN": NOTIFY,
        "EHR_DETECTION_MINUTES": "0",
        "PAYLOAD_KEYS": json.dumps({"leak-1": key}),
        "PAYLOAD_KEY_ID": "leak-1",
        "PAYLOAD_ENCRYPTION": str(encrypted).lower(),
    }
    try:
        asyncio.run(dev.wait_for_temporal(address))
        processes.append(dev.start_worker(env, home / "worker.log"))
        api = dev.start_api(env, api_port, home / "api.log")
        processes.append(api)
        dev.wait_for_http(f"http://127.0.0.1:{api_port}/healthz", api)
        yield LeakStack(home, f"http://127.0.0.1:{api_port}", address, task_queue, settings)
    finally:
        dev.stop(*reversed(processes))


@pytest.fixture
def encrypted_stack(tmp_path, ehr_url) -> Iterator[LeakStack]:
    yield from start_stack(tmp_path, ehr_url, encrypted=True)


@pytest.fixture
def plain_stack(tmp_path, ehr_url) -> Iterator[LeakStack]:
    yield from start_stack(tmp_path, ehr_url, encrypted=False)


# -- the cases ------------------------------------------------------------------------------------


def act(http: httpx.Client, case_id: str, action: str, headers: dict, **body) -> dict:
    response = http.post(f"/api/v1/cases/{case_id}/actions/{action}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def run_every_pathway(stack: LeakStack, ehr_url: str) -> None:
    ehr = Ehr(ehr_url)
    pid = new_id("pat")
    ehr.put(
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:mrn", "value": MRN}],
            "name": [{"given": [GIVEN], "family": FAMILY}],
            "birthDate": BORN,
            "telecom": [{"system": "phone", "value": PHONE}],
        }
    )
    patient = f"Patient/{pid}"
    code = uuid.uuid4().hex
    category = [CARDIOLOGY, {"coding": [{"system": "urn:leak", "code": code}]}]
    notified = ehr.order(patient, category=category)
    detected = ehr.order(patient, category=category)
    cora = stack.token("cora", Role.COORDINATOR, "cardiology")
    audrey = stack.token("audrey", Role.AUDITOR)
    admin = stack.token("ada", Role.ADMIN)

    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        # Opened three ways: the EHR's notification, the API, and detection on its schedule.
        taken = http.post(
            "/api/v1/fhir/notifications",
            json={"reference": notified},
            headers={"Authorization": f"Bearer {NOTIFY}"},
        )
        assert taken.status_code == 202, taken.text
        completed = taken.json()["results"][0]["case_ids"][0]
        posted = service_request(new_id("sr"), pid, "Holter monitor", CARDIOLOGY)
        posted.pop("locationReference")
        opened = http.post("/api/v1/referrals", json=posted, headers=admin)
        assert opened.status_code == 201, opened.text
        cancelled = opened.json()["case_id"]
        asyncio.run(detect_and_evaluate(stack, code))
        declined = f"referral-{detected.split('/')[1]}"

        # To completion, with outreach notes that name the patient as people write them.
        act(http, completed, "assign", cora)
        act(
            http,
            completed,
            "record-outreach",
            cora,
            channel="phone",
            outcome="reached",
            note=f"Spoke with {GIVEN} {FAMILY} on {PHONE}: {PHRASE}",
        )
        act(http, completed, "add-note", cora, text=f"{PHRASE}; MRN {MRN}, born {BORN}")
        visit = ehr.appointment(patient, LATER, notified)
        act(
            http,
            completed,
            "mark-scheduled",
            cora,
            appointment=f"Appointment/{visit['id']}",
            appointment_at=visit["start"],
        )
        act(http, completed, "mark-completed", cora, report="DiagnosticReport/not-filed-yet")
        report = ehr.diagnostic_report(patient, notified)
        act(http, completed, "mark-completed", cora, report=f"DiagnosticReport/{report['id']}")

        # A no-show, then cancelled with a reason that describes the patient.
        act(http, cancelled, "assign", cora)
        other = ehr.appointment(patient, LATER, None)
        act(
            http,
            cancelled,
            "mark-scheduled",
            cora,
            appointment=f"Appointment/{other['id']}",
            appointment_at=other["start"],
        )
        act(http, cancelled, "mark-no-show", cora, note=f"{GIVEN} missed it ({PHRASE})")
        act(http, cancelled, "cancel", cora, reason=f"{FAMILY}, born {BORN}, moved: {PHRASE}")

        # Declined on the phone.
        act(http, declined, "assign", cora)
        act(
            http,
            declined,
            "record-outreach",
            cora,
            channel="phone",
            outcome="declined",
            note=f"{GIVEN} declined, {PHRASE}",
        )

        # Read as the care team and auditors read cases, including the patient's details.
        token = cora["Authorization"].removeprefix("Bearer ")
        with httpx.Client(
            base_url=stack.base_url, cookies={SESSION_COOKIE: token}, timeout=30
        ) as browser:
            page = browser.get(f"/cases/{completed}")
            assert f"{GIVEN} {FAMILY}" in page.text and PHONE in page.text
            assert browser.get("/queue/rows?view=team").status_code == 200
        for case_id in (completed, cancelled, declined):
            assert http.get(f"/api/v1/cases/{case_id}/patient", headers=cora).status_code == 200
            assert ledger_written(http, case_id, cora)
            for view in ("history", "audit", "proof"):
                assert http.get(f"/api/v1/cases/{case_id}/{view}", headers=audrey).is_success
        assert http.get("/api/v1/audit/events.csv", headers=audrey).is_success
        assert http.get("/api/v1/metrics", headers=audrey).is_success


def ledger_written(http: httpx.Client, case_id: str, headers: dict) -> bool:
    for _ in range(150):  # entries follow the action that recorded them by milliseconds
        if http.get(f"/api/v1/cases/{case_id}", headers=headers).json()["ledger_pending"] == 0:
            return True
        time.sleep(0.2)
    return False


async def detect_and_evaluate(stack: LeakStack, code: str) -> None:
    client = await connect(stack.temporal_address, converter=data_converter(stack.settings))
    await client.execute_workflow(
        EhrDetectionWorkflow.run,
        Detection(categories=[code]),
        id=f"detect-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )
    await client.execute_workflow(
        DecisionTriggersWorkflow.run,
        Evaluation(rules=DEFAULT_RULES),
        id=f"triggers-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )


# -- the scan -------------------------------------------------------------------------------------


async def workflow_ids_and_search_attributes(stack: LeakStack) -> str:
    client = await connect(stack.temporal_address, converter=data_converter(stack.settings))
    seen = []
    async for execution in client.list_workflows(f"TaskQueue = '{stack.task_queue}'"):
        seen.append(execution.id)
        seen += [f"{key}={value}" for key, value in execution.search_attributes.items()]
    assert len(seen) > 3
    return "\n".join(seen)


def app_database_outside_the_ledger_s_free_text(path: Path) -> str:
    seen = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            kept = [c for c in columns if (table, c) not in PHI_BEARING]
            selected = ", ".join(f'"{c}"' for c in kept)
            seen += [repr(row) for row in db.execute(f'SELECT {selected} FROM "{table}"')]
    assert any("referral-" in row for row in seen)
    return "\n".join(seen)


def leaks(stack: LeakStack) -> list[tuple[str, str]]:
    """(where, what) for every distinctive detail found outside the places meant for it."""
    attributes = asyncio.run(workflow_ids_and_search_attributes(stack))
    places = {
        "workflow ids and search attributes": attributes.encode(),
        "API log": (stack.home / "api.log").read_bytes(),
        "worker log": (stack.home / "worker.log").read_bytes(),
        "app database": app_database_outside_the_ledger_s_free_text(stack.home / "app.db").encode(),
        "Temporal database": b"".join(p.read_bytes() for p in stack.home.glob("temporal.db*")),
    }
    return [
        (where, secret)
        for where, content in places.items()
        for secret in SECRETS
        if secret.encode() in content
    ]


def test_no_phi_reaches_temporal_logs_ids_or_the_app_database(encrypted_stack, ehr_url):
    run_every_pathway(encrypted_stack, ehr_url)

    assert leaks(encrypted_stack) == []


def test_without_the_codec_the_same_scan_finds_the_patient_in_temporal(plain_stack, ehr_url):
    run_every_pathway(plain_stack, ehr_url)

    found = leaks(plain_stack)

    assert {where for where, _ in found} == {"Temporal database"}
    assert {secret for _, secret in found} == set(SECRETS)
