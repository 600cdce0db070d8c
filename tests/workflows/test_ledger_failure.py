"""A ledger that refuses a case's entry: the case says so, a metric counts it, and its workflow
task fails (never a silent hang), which Temporal retries until the cause is fixed."""

from __future__ import annotations

import asyncio

from fastapi import HTTPException
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig

from activities.ledger.tables import LedgerRow
from api import cases
from workers.client import data_converter
from workers.settings import Settings
from workers.worker import build_worker
from workflows.care.trail import LEDGER_FAILURES
from workflows.referral.models import AddNote, Assign
from workflows.referral.workflow import ReferralWorkflow

from .referral_kit import COORDINATOR, act, ledger_written, open_referral

# As deployed: the failure's words travel encrypted, and the API decodes them to say why.
ENCRYPTING = data_converter(Settings(environment="test"))


async def failed_tasks(handle) -> list[str]:
    """The failed workflow tasks' reasons, decoded (in the history itself they are encrypted)."""
    history = await handle.fetch_history()
    failures = [
        event.workflow_task_failed_event_attributes.failure
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert all("ledger" not in failure.message for failure in failures)
    return [str(await ENCRYPTING.decode_failure(failure)) for failure in failures]


async def test_a_refused_entry_holds_the_case_loudly(temporal_address, engine, task_queue):
    buffer = MetricBuffer(100_000)
    worker_client = await Client.connect(
        temporal_address,
        data_converter=ENCRYPTING,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
    )
    client = await Client.connect(temporal_address, data_converter=ENCRYPTING)
    async with build_worker(worker_client, engine, task_queue=task_queue):
        handle = await open_referral(client, task_queue)
        await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        await ledger_written(handle)
        # Someone stored another entry under the number the case's next event takes.
        with Session(engine) as session:
            last = session.exec(
                select(LedgerRow).where(LedgerRow.case_id == handle.id, LedgerRow.seq == 3)
            ).one()
            forged = last.model_dump(exclude={"id"}) | {"seq": 4, "hash": "f" * 64}
            session.add(LedgerRow(**forged))
            session.commit()
        await handle.execute_update(
            ReferralWorkflow.add_note, AddNote(actor=COORDINATOR, text="called the clinic")
        )

        for _ in range(100):
            failures = await failed_tasks(handle)
            if failures:
                break
            await asyncio.sleep(0.1)
        assert failures and "ledger refused" in failures[0]
        assert "Ledger entry 4" in failures[0]
        counted = [
            update for update in buffer.retrieve_updates() if update.metric.name == LEDGER_FAILURES
        ]
        assert counted and counted[0].attributes["case_type"] == "referral"
        # The case is held, and reading it says why rather than hanging or looking fine.
        held = None
        for _ in range(40):
            try:
                await cases.query_case(client, handle.id)
            except HTTPException as err:
                held = err
                if "held" in err.detail:
                    break
            await asyncio.sleep(0.5)
        assert held is not None and held.status_code == 503 and "ledger refused" in held.detail
        assert (await handle.describe()).status.name == "RUNNING"
