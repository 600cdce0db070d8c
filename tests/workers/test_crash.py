"""A worker killed mid-case: a new worker picks the case up with nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

from activities.fhir.intake import open_case
from api.audit import case_trail, verify_chain
from tests.processes import process_env
from tests.workflows.referral_kit import act
from workers import dev
from workers.client import connect
from workers.database import make_engine
from workers.demo import CARDIOLOGY, service_request
from workers.settings import Settings
from workflows.care.models import Actor, Role
from workflows.care.pathway import Linked
from workflows.referral.intake import referral_input
from workflows.referral.models import AddNote, Assign
from workflows.referral.pathway import PATHWAY as REFERRAL
from workflows.referral.workflow import ReferralWorkflow

CORA = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")


async def test_sigkilled_worker_loses_nothing(temporal_address, tmp_path):
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = process_env(temporal_address, tmp_path, task_queue)
    client = await connect(temporal_address)
    first = dev.start_worker(env, tmp_path / "worker-1.log")
    try:
        sr = service_request(
            f"crash-{uuid.uuid4().hex[:8]}", "p-crash", "Cardiology consult", CARDIOLOGY
        )
        # A crash test, not an EHR one: the case is not linked to an EHR.
        order = referral_input(sr, Linked(Settings(ehr_verification=False)))
        opened = await open_case(client, REFERRAL, order, task_queue)
        handle = client.get_workflow_handle(opened.case_id)
        claimed = await act(handle, ReferralWorkflow.assign, Assign(actor=CORA))
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

    # With no worker alive the action waits in Temporal rather than failing or vanishing.
    pending = asyncio.create_task(
        act(handle, ReferralWorkflow.add_note, AddNote(actor=CORA, text="called the clinic"))
    )
    await asyncio.sleep(1)
    assert not pending.done()

    second = dev.start_worker(env, tmp_path / "worker-2.log")
    try:
        noted = await asyncio.wait_for(pending, timeout=60)
        # The action answers first; its ledger entries follow once its workflow task completed.
        for _ in range(150):
            if noted.ledger_pending == 0:
                break
            await asyncio.sleep(0.2)
            noted = await handle.query(ReferralWorkflow.detail)
    finally:
        dev.stop(second)
    assert noted.ledger_pending == 0
    assert noted.stage == "awaiting_scheduling"
    assert noted.owner == "cora"
    assert [e.kind for e in noted.timeline] == ["opened", "assigned", "stage_changed", "note"]
    assert noted.due_at == claimed.due_at
    # The ledger holds each event once, in order, even across the crash.
    trail = case_trail(make_engine(env["DATABASE_URL"]), noted.case_id)
    assert [e.seq for e in trail] == list(range(1, len(noted.timeline) + 1))
    assert verify_chain(noted.case_id, trail, noted).intact
    assert noted.timeline[0].kind == "opened" and noted.timeline[0].seq == 1
