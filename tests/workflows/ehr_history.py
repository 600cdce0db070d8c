"""The referral history recorded from v2 on: a case linked to the EHR sandbox, so the replay test
covers verification, rework, the Task mirror and an appointment booked in the EHR itself.

`python -m tests.workflows.record_histories v2` runs it (Node and `make test`'s npm step needed).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.fhir.client import FhirClient
from activities.fhir.models import EhrEvent
from tests.ehr.records import Ehr
from tests.workflows.referral_kit import COORDINATOR, SUPERVISOR, referral_input
from workers import dev, ehr_sandbox
from workers.client import register_search_attributes
from workers.database import make_engine
from workers.worker import build_worker
from workflows.care.models import OrderSummary
from workflows.referral.models import Assign, MarkCompleted, MarkNoShow, MarkScheduled
from workflows.referral.workflow import ReferralWorkflow


async def record_with_ehr(path: Path, test_server: str | None) -> Path:
    port = dev.free_port()
    sandbox = ehr_sandbox.start_ehr_sandbox(port, None)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server
    )
    try:
        ehr = Ehr(ehr_sandbox.wait_for_ehr_sandbox(port, sandbox))
        patient = ehr.patient()
        order = ehr.order(patient)
        fhir = FhirClient(str(ehr.http.base_url), timeout=5)
        case = referral_input().model_copy(
            update={
                "ehr": True,
                "order": OrderSummary(resource=order, patient=patient, service="Consult"),
            }
        )
        async with env:
            await register_search_attributes(env.client)
            engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/app.db")
            async with build_worker(env.client, engine, task_queue="record-ehr", fhir=fhir):
                handle = await env.client.start_workflow(
                    ReferralWorkflow.run, case, id=case.case_id, task_queue="record-ehr"
                )
                await env.sleep(timedelta(days=4))  # unowned past its window: escalation
                await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))

                async def schedule(status: str, days: int) -> None:
                    start = await env.get_current_time() + timedelta(days=days)
                    visit = ehr.appointment(patient, start, order, status=status)
                    claim = MarkScheduled(
                        actor=COORDINATOR,
                        appointment=f"Appointment/{visit['id']}",
                        appointment_at=start,
                    )
                    await handle.execute_update(ReferralWorkflow.mark_scheduled, claim)

                await schedule("cancelled", 2)  # not evidence: rework
                await schedule("booked", 2)  # verified
                await env.sleep(timedelta(days=3))
                await handle.execute_update(
                    ReferralWorkflow.mark_no_show, MarkNoShow(actor=SUPERVISOR)
                )
                # Rebooked directly in the EHR: the case notices and moves by itself.
                start = await env.get_current_time() + timedelta(days=1)
                visit = ehr.appointment(patient, start, order)
                await handle.signal(
                    ReferralWorkflow.ehr_changed,
                    EhrEvent(resource=f"Appointment/{visit['id']}", status="booked"),
                )
                await env.sleep(timedelta(days=2))
                report = ehr.diagnostic_report(patient, order)
                await handle.execute_update(
                    ReferralWorkflow.mark_completed,
                    MarkCompleted(actor=COORDINATOR, report=f"DiagnosticReport/{report['id']}"),
                )
                outcome = await handle.result()
                assert outcome.stage == "completed" and outcome.counters["rework"] == 1
                history = await handle.fetch_history()
            await fhir.aclose()
    finally:
        dev.stop(sandbox)
    path.write_text(history.to_json())
    return path
