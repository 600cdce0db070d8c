"""The prior-authorization history for the replay test: one case through most of the pathway,
against the EHR and payer sandboxes, recorded with the ledger entries it stored.

`python -m tests.workflows.record_histories prior-auth-v1` runs it (Node and `make test`'s npm
step needed). Keep old files when the pathway changes: running cases must still replay.
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.audit import case_trail
from tests.ehr.records import Ehr
from tests.workflows.ledger_replay import ledger_file, replayed_entries
from tests.workflows.prior_auth_kit import (
    COORDINATOR,
    COVERAGE,
    DENIAL,
    NOTES,
    SUPERVISOR,
    THERAPY,
    chart,
    decide,
    open_case,
    prior_auth_input,
    running,
    set_rules,
    settled,
)
from workers import dev, ehr_sandbox, payer_sandbox
from workers.client import register_search_attributes
from workers.database import make_engine
from workflows.prior_auth.models import (
    Assign,
    AttachDocument,
    MarkDelivered,
    RecordPayerCall,
    StartAppeal,
    SubmitNow,
    WaivePrerequisite,
)
from workflows.prior_auth.workflow import PriorAuthWorkflow


async def record_prior_auth(path: Path, test_server: str | None) -> Path:
    ehr_port, payer_port = dev.free_port(), dev.free_port()
    ehr_process = ehr_sandbox.start_ehr_sandbox(ehr_port, None)
    payer_process = payer_sandbox.start_payer_sandbox(payer_port, None)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server
    )
    try:
        ehr_url = ehr_sandbox.wait_for_ehr_sandbox(ehr_port, ehr_process)
        payer_url = payer_sandbox.wait_for_payer_sandbox(payer_port, payer_process)
        payer = httpx.Client(base_url=payer_url.removesuffix("/fhir"), timeout=15)
        ehr = Ehr(ehr_url)
        async with env:
            await register_search_attributes(env.client)
            engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
            now = await env.get_current_time()
            record = chart(ehr, now.date())
            record.note(now - timedelta(days=2))  # no therapy on file: waived
            case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
            async with running(env.client, engine, "record-pa", ehr_url, payer_url):
                set_rules(payer, {"service": "72148", "action": "A3", "reason": DENIAL})
                handle = await open_case(env.client, "record-pa", case)
                await handle.execute_update(PriorAuthWorkflow.assign, Assign(actor=COORDINATOR))
                await settled(handle, lambda d: d.checklist[0].status == "met")
                await handle.execute_update(
                    PriorAuthWorkflow.waive_prerequisite,
                    WaivePrerequisite(
                        actor=SUPERVISOR,
                        prerequisite="conservative_therapy",
                        reason="Post-surgical imaging: no therapy required first",
                    ),
                )
                await settled(handle, lambda d: d.stage == "denied")
                await handle.execute_update(
                    PriorAuthWorkflow.start_appeal,
                    StartAppeal(actor=COORDINATOR, peer_to_peer=True, note="Surgeon's letter"),
                )
                await env.sleep(timedelta(days=2))
                await handle.execute_update(
                    PriorAuthWorkflow.record_payer_call,
                    RecordPayerCall(
                        actor=COORDINATOR,
                        reference_number="P2P-1",
                        note="Reviewer will reconsider with the letter",
                        peer_to_peer=True,
                    ),
                )
                letter = record.note(await env.get_current_time())
                await handle.execute_update(
                    PriorAuthWorkflow.attach_document,
                    AttachDocument(actor=COORDINATOR, document=letter),
                )
                set_rules(payer, {"service": "72148", "action": "A4", "then": "A1", "days": 60})
                await handle.execute_update(
                    PriorAuthWorkflow.submit_now, SubmitNow(actor=COORDINATOR)
                )
                await env.sleep(timedelta(days=8))  # past the payer's 7 days: escalated, asked
                await settled(handle, lambda d: d.counters.get("inquiries") == 1)
                decision = decide(payer, case.case_id, 2, action="A1")
                await handle.signal(PriorAuthWorkflow.payer_decided, decision)
                await settled(handle, lambda d: d.stage == "approved")
                await env.sleep(timedelta(days=3))
                await handle.execute_update(
                    PriorAuthWorkflow.mark_delivered,
                    MarkDelivered(actor=COORDINATOR, report=record.report()),
                )
                outcome = await handle.result()
                assert outcome.stage == "delivered" and outcome.counters["submissions"] == 2
                history = await handle.fetch_history()
            stored = {entry.seq: entry for entry in case_trail(engine, case.case_id)}
    finally:
        dev.stop(payer_process)
        dev.stop(ehr_process)
    path.write_text(history.to_json())
    written = [
        stored[entry["seq"]].model_dump(mode="json", exclude={"recorded_at", "seal"})
        for entry in await replayed_entries(path)
    ]
    ledger_file(path).write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    return path
