"""The referral history recorded from v4 on: a case that messages its patient through the real
messaging activities (the SMS sandbox, a local SMTP server, the webhooks), so the replay test
covers the cadence, a delivery report, consent texted by the patient, pause and resume, a
call-back task, the appointment reminder confirmed and the conversation released at close.

`python -m tests.workflows.record_histories v4` runs it (Node and `make test`'s npm step needed).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.audit import case_trail
from tests.ehr.records import Ehr
from tests.messaging.kit import serve_webhooks
from tests.workflows.ledger_replay import ledger_file
from tests.workflows.outreach_kit import (
    detail,
    messaging_worker,
    outreach_input,
    reachable_patient,
    skip_to,
)
from tests.workflows.referral_kit import COORDINATOR, open_referral
from workers import dev, ehr_sandbox, registry, sms_sandbox
from workers.client import register_search_attributes
from workers.database import make_engine
from workers.mail_sandbox import MailSandbox
from workers.settings import Settings
from workflows.care.models import EventKind
from workflows.referral.models import (
    Assign,
    Channel,
    MarkCompleted,
    MarkScheduled,
    OutreachOutcome,
    PauseOutreach,
    RecordOutreach,
    ResumeOutreach,
)
from workflows.referral.workflow import ReferralWorkflow

DAY = timedelta(days=1)
PHONE, EMAIL = "+12065559001", "patient.v4@example.org"


async def _until(check, what: str):
    for _ in range(300):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} never happened")


async def record_with_outreach(path: Path, test_server: str | None) -> Path:
    home = Path(tempfile.mkdtemp())
    ehr_port, sms_port = dev.free_port(), dev.free_port()
    ehr_process = ehr_sandbox.start_ehr_sandbox(ehr_port, None)
    account, token = "AC" + uuid.uuid4().hex, "sms-" + uuid.uuid4().hex
    numbers = ["+16175550181", "+16175550182"]
    sms_process = sms_sandbox.start_sms_sandbox(
        sms_port, None, home / "sms.log", account_sid=account, auth_token=token, numbers=numbers
    )
    mail = MailSandbox(tls_dir=home / "tls", starttls=True).start()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server
    )
    sms_url = sms_sandbox.wait_for_sms_sandbox(sms_port, sms_process)
    settings = Settings(_env_file=None).model_copy(
        update={
            "environment": "test",
            "twilio_base_url": sms_url,
            "twilio_account_sid": account,
            "twilio_auth_token": token,
            "twilio_from_numbers": numbers,
            **mail.settings(),
        }
    )
    sms = httpx.Client(base_url=sms_url, timeout=10)

    def text(body: str) -> None:  # the patient texts the number the case wrote from
        ours = next(m["from"] for m in sms.get("/sandbox/messages").json() if m["to"] == PHONE)
        sms.post("/sandbox/reply", json={"from": PHONE, "to": ours, "body": body})

    def texts() -> int:
        return sum(m["to"] == PHONE for m in sms.get("/sandbox/messages").json())

    chosen = registry.get_settings
    try:
        ehr_url = ehr_sandbox.wait_for_ehr_sandbox(ehr_port, ehr_process)
        ehr = Ehr(ehr_url)
        async with env:
            await register_search_attributes(env.client)
            engine = make_engine(f"sqlite:///{home / 'app.db'}")
            async with serve_webhooks(env.client, engine, settings) as url:
                served = settings.model_copy(update={"public_url": url})
                registry.get_settings = lambda: served  # the worker's activities send here
                async with messaging_worker(env.client, engine, "record-outreach", ehr_url):
                    start = await skip_to(env, 10)  # a Tuesday, 10:00 in Los Angeles
                    patient = reachable_patient(ehr, PHONE, EMAIL)
                    order = outreach_input(ehr, patient=patient)
                    handle = await open_referral(env.client, "record-outreach", order)

                    async def events(kind: EventKind, count: int = 1):
                        found = await detail(handle)
                        return sum(e.kind == kind for e in found.timeline) >= count

                    await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
                    await _until(lambda: events(EventKind.DELIVERY), "the text's delivery")
                    text("STOP")
                    await _until(lambda: events(EventKind.CONSENT), "the opt-out")
                    await env.sleep(DAY)
                    await handle.execute_update(
                        ReferralWorkflow.pause_outreach, PauseOutreach(actor=COORDINATOR)
                    )
                    await env.sleep(DAY)
                    await handle.execute_update(
                        ReferralWorkflow.resume_outreach, ResumeOutreach(actor=COORDINATOR)
                    )
                    await env.sleep(2 * DAY + timedelta(minutes=5))  # day 4: the email
                    await _until(lambda: mail.messages(), "the email")
                    text("START")
                    await _until(lambda: events(EventKind.CONSENT, 2), "the opt-in")
                    text("2")
                    await _until(lambda: events(EventKind.REPLY), "the call back")
                    await handle.execute_update(
                        ReferralWorkflow.record_outreach,
                        RecordOutreach(
                            actor=COORDINATOR,
                            channel=Channel.PHONE,
                            outcome=OutreachOutcome.REACHED,
                        ),
                    )
                    await env.sleep(DAY)
                    visit = start + 9 * DAY
                    await handle.execute_update(
                        ReferralWorkflow.mark_scheduled,
                        MarkScheduled(
                            actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit
                        ),
                    )
                    await env.sleep(visit - 2 * DAY - await env.get_current_time())
                    await _until(lambda: texts() == 2, "the reminder")
                    await _until(lambda: events(EventKind.DELIVERY, 2), "its delivery")
                    text("1")
                    await _until(lambda: events(EventKind.REPLY, 2), "the confirmation")
                    await env.sleep(3 * DAY)
                    await handle.execute_update(
                        ReferralWorkflow.mark_completed,
                        MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
                    )
                    outcome = await handle.result()
                    assert outcome.stage == "completed"
                    history = await handle.fetch_history()
            stored = case_trail(engine, handle.id)
    finally:
        registry.get_settings = chosen
        await asyncio.to_thread(sms.close)
        mail.stop()
        dev.stop(sms_process, ehr_process)
    path.write_text(history.to_json())
    written = [entry.model_dump(mode="json", exclude={"recorded_at", "seal"}) for entry in stored]
    ledger_file(path).write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    return path
