"""The EHR goes down mid-case: the action answers that the case waits on the EHR, verification
keeps retrying, nothing is lost, and the case catches up when the EHR is back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.fhir.client import FhirClient
from api.audit import case_trail
from tests.workflows.referral_kit import COORDINATOR, act, booked, ledger_written, linked_referral
from workers import dev, ehr_sandbox
from workers.client import connect
from workers.worker import build_worker
from workflows.care.models import EventKind
from workflows.referral.models import Assign, Cancel
from workflows.referral.workflow import ReferralWorkflow

from .records import Ehr


async def test_verification_waits_out_an_outage(temporal_address, tmp_path, engine, caplog):
    port = dev.free_port()
    start = lambda: ehr_sandbox.start_ehr_sandbox(port, tmp_path / "ehr", tmp_path / "ehr.log")  # noqa: E731
    sandbox = start()
    url = ehr_sandbox.wait_for_ehr_sandbox(port, sandbox)
    ehr = Ehr(url)
    patient = ehr.patient()
    order = ehr.order(patient)
    visit = ehr.appointment(patient, datetime.now(UTC) + timedelta(days=3), order)

    client = await connect(temporal_address)
    fhir = FhirClient(url, timeout=2)
    task_queue = f"outage-{uuid.uuid4().hex[:8]}"
    case = linked_referral(order, patient)
    try:
        async with build_worker(client, engine, task_queue=task_queue, fhir=fhir):
            handle = await client.start_workflow(
                ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
            )
            await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
            dev.stop(sandbox)

            claim = booked(visit)
            waiting = await act(handle, ReferralWorkflow.mark_scheduled, claim)
            assert waiting.stage == "awaiting_scheduling"
            assert "waiting_on_ehr_since" in waiting.moments
            assert waiting.timeline[-1].kind == EventKind.EXCEPTION_RAISED
            assert "Waiting on the EHR" in waiting.timeline[-1].summary

            sandbox = start()  # same port, same write log: the EHR is back with its data
            ehr_sandbox.wait_for_ehr_sandbox(port, sandbox)
            for _ in range(150):
                detail = await handle.query(ReferralWorkflow.detail)
                if detail.stage == "scheduled" and "task" in detail.references:
                    break
                await asyncio.sleep(0.2)
            assert detail.stage == "scheduled"
            assert "waiting_on_ehr_since" not in detail.moments
            kinds = [event.kind for event in detail.timeline]
            assert EventKind.EXCEPTION_CLEARED in kinds and EventKind.VERIFIED in kinds
            assert detail.counters.get("rework") is None
            task = ehr.read(detail.references["task"])
            for _ in range(50):
                if task["status"] == "in-progress":
                    break
                await asyncio.sleep(0.2)
                task = ehr.read(detail.references["task"])
            assert task["status"] == "in-progress"
            await handle.terminate("test finished")
        # Each failed attempt is one line from the FHIR client, not a traceback from the worker.
        tracebacks = [
            record.getMessage()
            for record in caplog.records
            if record.name.startswith("temporalio")
            and record.exc_info
            and record.levelno >= logging.WARNING
        ]
        assert tracebacks == []
    finally:
        await fhir.aclose()
        dev.stop(sandbox)


class RefusingAppointments(httpx.AsyncBaseTransport):
    """The real sandbox, except that this client may not read Appointments (as an EHR can say)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/Appointment/" in request.url.path:
            self.refused += 1
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "forbidden",
                        "details": {"text": "Appointment access is not granted to this client"},
                    }
                ],
            }
            return httpx.Response(403, json=outcome)
        return await self.inner.handle_async_request(request)


async def test_a_refusal_is_not_retried_and_reaches_the_timeline(temporal_address, ehr_url, engine):
    ehr = Ehr(ehr_url)
    patient = ehr.patient()
    order = ehr.order(patient)
    visit = ehr.appointment(patient, datetime.now(UTC) + timedelta(days=3), order)
    transport = RefusingAppointments()
    fhir = FhirClient(ehr_url, timeout=5, transport=transport)
    client = await connect(temporal_address)
    task_queue = f"refusal-{uuid.uuid4().hex[:8]}"
    case = linked_referral(order, patient)
    async with build_worker(client, engine, task_queue=task_queue, fhir=fhir):
        handle = await client.start_workflow(
            ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
        )
        await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        claim = booked(visit)
        answer = await act(handle, ReferralWorkflow.mark_scheduled, claim)
        await handle.terminate("test finished")
    await fhir.aclose()
    assert answer.stage == "awaiting_scheduling" and answer.counters["rework"] == 1
    rework = answer.timeline[-1]
    assert rework.kind == EventKind.REWORK
    assert "HTTP 403" in rework.summary
    assert "Appointment access is not granted to this client" in rework.summary
    assert transport.refused == 1  # non-retryable: asked once


class DownForAppointments(httpx.AsyncBaseTransport):
    """The real sandbox, except that its Appointments answer 503 (down), however often asked."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/Appointment" in request.url.path:
            return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        return await self.inner.handle_async_request(request)


async def test_a_long_outage_gives_the_claim_back_and_a_cancel_waits_for_it(
    time_skipping, ehr_url, engine, task_queue
):
    """A claim waits on the EHR at most an hour: meanwhile other claims are refused (one at a
    time), after it the claim goes back to its owner and the case takes claims again. A case
    cancelled while a claim is checked completes only once the check has ended, and the claim
    does not move it afterwards."""
    ehr = Ehr(ehr_url)
    fhir = FhirClient(ehr_url, timeout=5, transport=DownForAppointments())
    client = time_skipping.client

    def case_for(patient: str, order: str):
        return linked_referral(order, patient, "Consult")

    handles, claims = [], []
    async with build_worker(client, engine, task_queue=task_queue, fhir=fhir):
        try:
            for _ in range(2):
                patient = ehr.patient()
                order = ehr.order(patient)
                # The test clock has moved on with the tests before: the visit is three days on it.
                soon = await time_skipping.get_current_time() + timedelta(days=3)
                visit = ehr.appointment(patient, soon, order)
                case = case_for(patient, order)
                handle = await client.start_workflow(
                    ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
                )
                await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
                claim = booked(visit)
                waiting = await act(handle, ReferralWorkflow.mark_scheduled, claim)
                assert "waiting_on_ehr_since" in waiting.moments
                handles.append(handle)
                claims.append(claim)
            stays, cancelled = handles

            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await stays.execute_update(ReferralWorkflow.mark_scheduled, claims[0])
            assert "still being verified" in str(refused.value.cause)
            await cancelled.execute_update(
                ReferralWorkflow.cancel, Cancel(actor=COORDINATOR, reason="Ordered twice")
            )
            history = await cancelled.fetch_history()  # the check still runs: the case waits for it
            assert (
                history.events[-1].event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
            )

            await time_skipping.sleep(timedelta(hours=2))
            outcome = await cancelled.result()
            assert outcome.stage == "cancelled"
            after = await ledger_written(stays)
            assert after.stage == "awaiting_scheduling" and after.counters["rework"] == 1
            rework = [e for e in after.timeline if e.kind == EventKind.REWORK][-1]
            assert "did not answer for 1 hour" in rework.summary
            # The lock is free again: the next claim is taken (and waits on the EHR in its turn).
            later = (await time_skipping.get_current_time()) + timedelta(days=3)
            claim = claims[0].model_copy(update={"appointment_at": later})
            again = await act(stays, ReferralWorkflow.mark_scheduled, claim)
            assert again.ledger_pending >= 0 and "waiting_on_ehr_since" in again.moments
        finally:
            # Left open, their timers would hold back the time-skipping server for later tests.
            for handle in handles:
                with suppress(RPCError):
                    await handle.terminate("test finished")
    await fhir.aclose()
    trail = case_trail(engine, cancelled.id)
    kinds = [e.kind for e in trail]
    assert "cancelled" in kinds and "verified" not in kinds and "rework" not in kinds
    assert "scheduled" not in [e.stage_after for e in trail]
    assert trail[-1].summary == "Stopped waiting on the EHR"
