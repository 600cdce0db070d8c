"""The activities as a case calls them: by their names, on the queues the registry puts them on,
their inputs and results through Temporal's data converter."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from workers.registry import activities
from workflows.care.messaging import Medium, OutboundMessage, PatientContact, SendResult
from workflows.care.queues import QueueKind

from .conftest import message, messaging_settings, new_phone

ONCE = RetryPolicy(maximum_attempts=1)
WITHIN = timedelta(seconds=20)


@workflow.defn(name="MessagingCaller", sandboxed=False)
class Caller:
    @workflow.run
    async def run(self, outbound: OutboundMessage) -> tuple[PatientContact, SendResult]:
        contact = await workflow.execute_activity(
            "patient_contact",
            outbound.patient,
            result_type=PatientContact,
            start_to_close_timeout=WITHIN,
            retry_policy=ONCE,
        )
        sent = await workflow.execute_activity(
            "send_message",
            outbound,
            result_type=SendResult,
            start_to_close_timeout=WITHIN,
            retry_policy=ONCE,
        )
        await workflow.execute_activity(
            "release_conversations",
            outbound.case_id,
            start_to_close_timeout=WITHIN,
            retry_policy=ONCE,
        )
        return contact, sent


async def test_the_registry_serves_the_messaging_activities_by_name(
    client, engine, fhir, patient, sms_sandbox, mail_sandbox, monkeypatch, task_queue
):
    settings = messaging_settings(sms_sandbox, mail_sandbox)
    monkeypatch.setattr("workers.registry.get_settings", lambda: settings)
    by_queue = activities(engine, fhir)
    names = {
        kind: {activity.__temporal_activity_definition.name for activity in listed}  # type: ignore[attr-defined]
        for kind, listed in by_queue.items()
    }
    assert {"send_message", "release_conversations"} <= names[QueueKind.MESSAGING]
    assert "patient_contact" in names[QueueKind.EHR]
    phone = new_phone()
    who = patient(phone, address=[{"state": "WA"}])
    outbound = message(who, Medium.SMS, case_id=f"referral-{uuid.uuid4().hex[:10]}")
    served = by_queue[QueueKind.MESSAGING] + by_queue[QueueKind.EHR]
    async with Worker(client, task_queue=task_queue, workflows=[Caller], activities=served):
        contact, sent = await client.execute_workflow(
            Caller.run, outbound, id=f"caller-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
    assert (contact.sms, contact.timezone) == (True, "America/Los_Angeles")
    assert sent.status == "sent" and sent.provider_id.startswith("SM")
    assert [m["sid"] for m in sms_sandbox.messages() if m["to"] == phone] == [sent.provider_id]
