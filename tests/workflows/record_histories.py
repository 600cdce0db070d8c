"""Record referral histories for the replay test: `python -m tests.workflows.record_histories`.

Run it when the referral pathway changes on purpose, and keep the old files too: cases started
under the old code must still replay (guard changes with `workflow.patched`).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.workflows.referral_kit import COORDINATOR, SUPERVISOR, open_referral, running
from workers.client import register_search_attributes
from workers.database import make_engine
from workflows.referral.models import (
    Assign,
    Channel,
    MarkCompleted,
    MarkNoShow,
    MarkScheduled,
    OutreachOutcome,
    RecordOutreach,
)
from workflows.referral.workflow import ReferralWorkflow

HISTORIES = Path(__file__).parent / "histories"


def test_server() -> str | None:
    local = Path(sys.executable).parent / "temporal-test-server"
    return str(local) if local.exists() else None


async def record(version: str) -> Path:
    if version != "v1":
        from tests.workflows.ehr_history import record_with_ehr

        return await record_with_ehr(HISTORIES / f"referral-{version}.json", test_server())
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server()
    )
    async with env:
        await register_search_attributes(env.client)
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
        async with running(env.client, engine, "record"):
            handle = await open_referral(env.client, "record")
            await env.sleep(timedelta(days=4))  # unowned past its window: escalation
            await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
            await handle.execute_update(
                ReferralWorkflow.record_outreach,
                RecordOutreach(
                    actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.NO_ANSWER
                ),
            )
            await env.sleep(timedelta(days=13))  # reminder, then escalation
            visit = await env.get_current_time() + timedelta(days=2)
            await handle.execute_update(
                ReferralWorkflow.mark_scheduled,
                MarkScheduled(
                    actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit
                ),
            )
            await env.sleep(timedelta(days=3))
            await handle.execute_update(ReferralWorkflow.mark_no_show, MarkNoShow(actor=SUPERVISOR))
            visit = await env.get_current_time() + timedelta(days=1)
            await handle.execute_update(
                ReferralWorkflow.mark_scheduled,
                MarkScheduled(
                    actor=COORDINATOR, appointment="Appointment/a2", appointment_at=visit
                ),
            )
            await env.sleep(timedelta(days=2))
            await handle.execute_update(
                ReferralWorkflow.mark_completed,
                MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
            )
            await handle.result()
            history = await handle.fetch_history()
    path = HISTORIES / f"referral-{version}.json"
    path.write_text(history.to_json())
    return path


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1")))
