"""Builders for the outreach scenarios: referral cases that message their patient, a worker with
the real EHR activities against the EHR sandbox, and a stand-in for the messaging provider that
records what it was asked to send (the scenarios say what the provider and the patient answer,
as the webhooks would tell the case)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.fhir.client import FhirClient
from tests.ehr.records import Ehr, new_id
from tests.workflows.referral_kit import _opened, ledger_written, referral_input, running
from workers import registry
from workflows.care.messaging import (
    DeliveryNews,
    DeliveryStatus,
    Medium,
    OutboundMessage,
    PatientContact,
    ReplyKind,
    ReplyNews,
    SendResult,
    SendStatus,
    segments,
)
from workflows.care.models import CaseDetail
from workflows.care.queues import QueueKind, queue_name
from workflows.referral.models import OutreachPlan, ReferralInput, ReferralPolicy
from workflows.referral.workflow import ReferralWorkflow

LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # the patients' time zone in these scenarios
PLAN = OutreachPlan(sender="Northside Clinic", callback_phone="555-0100")


@dataclass
class Sent:
    message: OutboundMessage
    at: datetime  # on the (time-skipping) server's clock


@dataclass
class Provider:
    """Stands in for the messaging activities (same names): answers each send with the status
    set for its channel (SENT unless told), once per attempt id."""

    timezone: str = "America/Los_Angeles"
    channels: set[Medium] = field(default_factory=lambda: {Medium.SMS, Medium.EMAIL, Medium.PORTAL})
    statuses: dict[Medium, SendStatus] = field(default_factory=dict)
    sent: dict[str, Sent] = field(default_factory=dict)
    contacts_read: int = 0
    released: list[str] = field(default_factory=list)

    @activity.defn(name="send_message")
    async def send_message(self, message: OutboundMessage) -> SendResult:
        at = activity.info().current_attempt_scheduled_time
        status = self.statuses.get(message.channel, SendStatus.SENT)
        if status == SendStatus.SENT:
            self.sent.setdefault(message.attempt_id, Sent(message, at))
        return SendResult(
            attempt_id=message.attempt_id,
            status=status,
            provider_id=f"SM{uuid.uuid5(uuid.NAMESPACE_URL, message.attempt_id).hex}",
            segments=segments(message.body) if message.channel == Medium.SMS else 0,
            sent_at=at if status == SendStatus.SENT else None,
        )

    @activity.defn(name="patient_contact")
    async def patient_contact(self, patient: str) -> PatientContact:
        self.contacts_read += 1
        return PatientContact(
            patient=patient,
            sms=Medium.SMS in self.channels,
            email=Medium.EMAIL in self.channels,
            portal=Medium.PORTAL in self.channels,
            timezone=self.timezone,
        )

    @activity.defn(name="release_conversations")
    async def release_conversations(self, case_id: str) -> None:
        self.released.append(case_id)

    def by(self, channel: Medium) -> list[Sent]:
        return [s for s in self.sent.values() if s.message.channel == channel]

    @property
    def doubles(self) -> list:
        return [self.send_message, self.patient_contact, self.release_conversations]


def _name(fn) -> str:
    return activity._Definition.must_from_callable(fn).name


@asynccontextmanager
async def messaging_worker(
    client: Client, engine, task_queue: str, ehr_url: str, provider: Provider | None = None
):
    """The referral kit's worker (workflows, ledger, real EHR activities against the sandbox),
    with the provider's stand-ins on the EHR and messaging queues; without a provider, the real
    messaging activities of the registry (their settings are the registry's)."""
    fhir = FhirClient(ehr_url, timeout=5)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(fhir.aclose)  # last: a write under way finishes first
        if provider is None:
            await stack.enter_async_context(running(client, engine, task_queue, fhir=fhir))
        else:
            by_queue = registry.activities(engine, fhir)
            doubles = {_name(fn) for fn in provider.doubles}
            await stack.enter_async_context(
                running(client, engine, task_queue, queues=[QueueKind.WORKFLOWS], fhir=fhir)
            )
            extra = {
                QueueKind.EHR: [provider.patient_contact],
                QueueKind.MESSAGING: [provider.send_message, provider.release_conversations],
            }
            for kind, doubled in extra.items():
                kept = [fn for fn in by_queue[kind] if _name(fn) not in doubles]
                worker = Worker(
                    client, task_queue=queue_name(task_queue, kind), activities=kept + doubled
                )
                await stack.enter_async_context(worker)
        try:
            yield
        except BaseException:
            # A test that failed may leave a send under way: let it finish first, or the
            # time-skipping server keeps its clock locked for the tests that follow.
            await asyncio.sleep(2)
            raise
        finally:
            # Cases closed before their workers stop: an activity cut off by a stopping worker
            # would hold the time-skipping clock for the tests that follow.
            for handle in _opened.get(task_queue, []):
                with suppress(RPCError, AssertionError):
                    await ledger_written(handle)
                with suppress(RPCError):
                    await handle.terminate("test finished")


def reachable_patient(ehr: Ehr, phone: str | None = None, email: str | None = None) -> str:
    """A Patient in the EHR sandbox living in Washington (Los Angeles time), with a mobile
    number and an email address when given; its reference."""
    telecom = [{"system": "phone", "value": phone, "use": "mobile"}] if phone else []
    telecom += [{"system": "email", "value": email}] if email else []
    pid = new_id("pat")
    ehr.put(
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": "Synthetic"}],
            "address": [{"state": "WA"}],
            **({"telecom": telecom} if telecom else {}),
        }
    )
    return f"Patient/{pid}"


def outreach_input(
    ehr: Ehr, policy: ReferralPolicy | None = None, patient: str | None = None
) -> ReferralInput:
    """A routine referral for a patient and order of the EHR sandbox, messaging its patient."""
    patient = patient or ehr.patient()
    order = referral_input()
    summary = order.order.model_copy(update={"patient": patient, "resource": ehr.order(patient)})
    return order.model_copy(
        update={"order": summary, "outreach": PLAN, "policy": policy or ReferralPolicy()}
    )


async def skip_to(env, hour: int, zone: ZoneInfo = LOS_ANGELES) -> datetime:
    """Move the clock on to the next `hour`:00 in `zone` on a Tuesday (a day whose next six days
    hold one weekend), and answer the time."""
    now = await env.get_current_time()
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=1)
    while day.weekday() != 1:
        day += timedelta(days=1)
    target = datetime.combine(day, time(hour), zone)
    await env.sleep(target - now)
    return await env.get_current_time()


async def detail(handle: WorkflowHandle) -> CaseDetail:
    return await handle.query(ReferralWorkflow.detail)


def reply(attempt_id: str, body: str, kind: ReplyKind, at: datetime) -> ReplyNews:
    return ReplyNews(
        message_id=f"IN{uuid.uuid4().hex}",
        in_reply_to=attempt_id,
        channel=Medium.SMS,
        kind=kind,
        body=body,
        at=at,
    )


def delivery(attempt_id: str, status: DeliveryStatus, at: datetime) -> DeliveryNews:
    return DeliveryNews(
        attempt_id=attempt_id,
        provider_id=f"SM{attempt_id}",
        status=status,
        error_code="30006" if status != DeliveryStatus.DELIVERED else None,
        at=at,
    )


def communications(ehr: Ehr, order: str) -> list[dict]:
    """The Communications the EHR holds for an order."""
    bundle = ehr.http.get("/Communication", params={"based-on": order, "_count": "100"}).json()
    return [entry["resource"] for entry in bundle.get("entry") or []]
