"""The referral history recorded from v4 on: a case that messages its patient, so the replay test
covers the cadence, quiet hours, consent, a failed delivery falling back, pause and resume, a
call-back task, the appointment reminder confirmed and the conversation released at close.

`python -m tests.workflows.record_histories v4` runs it (Node and `make test`'s npm step needed).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.audit import case_trail
from tests.ehr.records import Ehr
from tests.workflows.ledger_replay import ledger_file
from tests.workflows.outreach_kit import (
    Provider,
    delivery,
    messaging_worker,
    outreach_input,
    reply,
    skip_to,
)
from tests.workflows.referral_kit import COORDINATOR, open_referral
from workers import dev, ehr_sandbox
from workers.client import register_search_attributes
from workers.database import make_engine
from workflows.care.messaging import DELIVERY_SIGNAL, REPLY_SIGNAL, DeliveryStatus, Medium
from workflows.care.messaging import ReplyKind as Kind
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


async def _sent(provider: Provider, count: int) -> list:
    for _ in range(400):
        if len(provider.sent) >= count:
            return list(provider.sent.values())
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} messages never went")


async def record_with_outreach(path: Path, test_server: str | None) -> Path:
    port = dev.free_port()
    sandbox = ehr_sandbox.start_ehr_sandbox(port, None)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server
    )
    try:
        ehr_url = ehr_sandbox.wait_for_ehr_sandbox(port, sandbox)
        ehr = Ehr(ehr_url)
        provider = Provider()
        async with env:
            await register_search_attributes(env.client)
            engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
            async with messaging_worker(env.client, engine, "record-outreach", ehr_url, provider):
                start = await skip_to(env, 10)  # a Tuesday, 10:00 in Los Angeles
                handle = await open_referral(env.client, "record-outreach", outreach_input(ehr))
                await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))

                async def tell(signal: str, news) -> None:
                    await handle.signal(signal, news)
                    await asyncio.sleep(0.3)

                (text,) = await _sent(provider, 1)
                first = text.message.attempt_id
                now = await env.get_current_time()
                await tell(DELIVERY_SIGNAL, delivery(first, DeliveryStatus.DELIVERED, now))
                await tell(REPLY_SIGNAL, reply(first, "STOP", Kind.OPT_OUT, now))
                await env.sleep(DAY)
                await handle.execute_update(
                    ReferralWorkflow.pause_outreach, PauseOutreach(actor=COORDINATOR)
                )
                await env.sleep(DAY)
                await handle.execute_update(
                    ReferralWorkflow.resume_outreach, ResumeOutreach(actor=COORDINATOR)
                )
                await env.sleep(2 * DAY + timedelta(minutes=5))  # day 4: the email
                mail = (await _sent(provider, 2))[1].message.attempt_id
                now = await env.get_current_time()
                await tell(DELIVERY_SIGNAL, delivery(mail, DeliveryStatus.UNDELIVERED, now))
                portal = (await _sent(provider, 3))[2]
                assert portal.message.channel == Medium.PORTAL
                news = reply(portal.message.attempt_id, "Who is this?", Kind.OTHER, now)
                await tell(REPLY_SIGNAL, news.model_copy(update={"channel": Medium.PORTAL}))
                await tell(REPLY_SIGNAL, reply(first, "START", Kind.OPT_IN, now))
                await tell(REPLY_SIGNAL, reply(first, "2", Kind.CALL_BACK, now))
                await handle.execute_update(
                    ReferralWorkflow.record_outreach,
                    RecordOutreach(
                        actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.REACHED
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
                reminder = (await _sent(provider, 4))[3].message.attempt_id
                now = await env.get_current_time()
                await tell(REPLY_SIGNAL, reply(reminder, "1", Kind.CONFIRM, now))
                await env.sleep(3 * DAY)
                await handle.execute_update(
                    ReferralWorkflow.mark_completed,
                    MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
                )
                outcome = await handle.result()
                assert outcome.stage == "completed" and provider.released == [handle.id]
                history = await handle.fetch_history()
            stored = case_trail(engine, handle.id)
    finally:
        dev.stop(sandbox)
    path.write_text(history.to_json())
    written = [entry.model_dump(mode="json", exclude={"recorded_at", "seal"}) for entry in stored]
    ledger_file(path).write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    return path
