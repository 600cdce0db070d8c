"""Sending a message to a patient: the activities a case calls on the messaging queue.

`send_message` is once-only per attempt: the attempt is stored before anything is sent and looked
up first, so a retried activity answers from the stored attempt instead of sending again. The
address is read from the EHR's Patient at the moment of sending and is never logged, returned,
stored (only its keyed hash) or put into an error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.messaging import portal, records
from activities.messaging.addresses import address_hash, normalized, patient_address
from activities.messaging.email import Mailer, RecipientRefused
from activities.messaging.sms import (
    OPTED_OUT_CODES,
    SMS_REJECTED,
    SMS_UNCONFIRMED,
    UNREACHABLE_CODES,
    Refused,
    Twilio,
)
from activities.messaging.tables import OutboundRecord
from workers.settings import Settings
from workflows.care.messaging import (
    DeliveryStatus,
    Medium,
    OutboundMessage,
    SendResult,
    SendStatus,
)

log = structlog.get_logger(__name__)

STATUS_PATH = "/api/v1/messaging/twilio/status"
INBOUND_PATH = "/api/v1/messaging/twilio/inbound"
NOT_SENDABLE = "NotSendable"
UNCONFIRMED = "unconfirmed"  # a send whose answer was lost: it may have gone, it is not resent


def public_base(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")


def stored_result(row: OutboundRecord) -> SendResult:
    if row.status == "sending":  # an earlier try's outcome is unknown: never send twice
        return SendResult(attempt_id=row.attempt_id, status=SendStatus.SENT, error_code=UNCONFIRMED)
    return SendResult(
        attempt_id=row.attempt_id,
        status=SendStatus(row.status),
        provider_id=row.provider_id,
        segments=row.segments,
        error_code=row.error_code,
        sent_at=row.sent_at,
    )


class MessagingActivities:
    """Every channel to the patient. The providers come from the settings (a channel without
    its settings is not configured: its sends answer NO_ADDRESS); tests pass their own."""

    def __init__(
        self,
        engine: Engine,
        fhir: FhirClient,
        settings: Settings,
        *,
        twilio: Twilio | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.engine, self.fhir, self.settings = engine, fhir, settings
        self.twilio = twilio or Twilio.from_settings(settings)
        self.mailer = mailer or Mailer.from_settings(settings)

    @activity.defn(name="send_message")
    async def send(self, message: OutboundMessage) -> SendResult:
        structlog.contextvars.bind_contextvars(
            attempt_id=message.attempt_id, case_id=message.case_id, channel=message.channel.value
        )
        stored = await asyncio.to_thread(records.attempt, self.engine, message.attempt_id)
        # The portal outbox is ours: an interrupted post is finished rather than left unknown.
        unfinished_post = stored is not None and stored.status == "sending"
        if stored is not None and not (unfinished_post and message.channel == Medium.PORTAL):
            log.info("message_already_attempted", status=stored.status)
            return stored_result(stored)
        if message.channel == Medium.PORTAL:
            result = await asyncio.to_thread(self._portal, message)
        elif message.channel in (Medium.SMS, Medium.EMAIL):
            result = await self._remote(message)
        else:
            raise ApplicationError(
                f"{message.channel.value} is not a channel that sends",
                type=NOT_SENDABLE,
                non_retryable=True,
            )
        log.info("message_attempted", status=result.status.value, error_code=result.error_code)
        return result

    @activity.defn(name="release_conversations")
    async def release(self, case_id: str) -> None:
        released = await asyncio.to_thread(records.release, self.engine, case_id)
        log.info("conversations_released", case_id=case_id, released=released)

    # -- channels ---------------------------------------------------------------------------

    def _portal(self, message: OutboundMessage) -> SendResult:
        if records.claim(self.engine, message) is None:
            stored = records.attempt(self.engine, message.attempt_id)
            assert stored is not None  # attempts are never deleted once settled
            if stored.status != "sending":
                return stored_result(stored)
        outbox_id = portal.post(self.engine, message)  # once per attempt, however often called
        row = records.settle(
            self.engine,
            message.attempt_id,
            status=SendStatus.SENT.value,
            provider_id=f"portal:{outbox_id}",
            sent_at=datetime.now(UTC),
        )
        return stored_result(row)

    async def _remote(self, message: OutboundMessage) -> SendResult:
        provider = self.twilio if message.channel == Medium.SMS else self.mailer
        address = await self._address(message) if provider else None
        if address is None:
            return await self._final(message, SendStatus.NO_ADDRESS)
        hashed = address_hash(self.settings.messaging_address_key, message.channel, address)
        if await asyncio.to_thread(records.opted_out, self.engine, hashed, message.channel):
            return await self._final(message, SendStatus.OPTED_OUT, address_hash=hashed)
        sender = None
        if message.channel == Medium.SMS:
            sender = await asyncio.to_thread(
                records.hold_sender,
                self.engine,
                hashed,
                message.case_id,
                self.settings.twilio_from_numbers,
            )
            if sender is None:
                return await self._final(message, SendStatus.BUSY, address_hash=hashed)
        claimed = await asyncio.to_thread(
            records.claim, self.engine, message, address_hash=hashed, sender=sender
        )
        if claimed is None:
            return stored_result(
                await asyncio.to_thread(records.attempt, self.engine, message.attempt_id)
            )  # type: ignore[arg-type]
        try:
            if message.channel == Medium.SMS:
                fields = await self._sms(message, normalized(Medium.SMS, address), sender, hashed)
            else:
                fields = await self._email(message, address)
        except ApplicationError as err:
            # Surely not sent: forget the claim so that a retry sends it. Otherwise (an answer
            # lost, a cancel or crash mid-send) the claim stays and a retry never sends again.
            if err.type != SMS_UNCONFIRMED:
                await asyncio.to_thread(records.unclaim, self.engine, message.attempt_id)
            raise
        row = await asyncio.to_thread(records.settle, self.engine, message.attempt_id, **fields)
        return stored_result(row)

    async def _address(self, message: OutboundMessage) -> str | None:
        patient = await self.fhir.read_if_exists(message.patient)
        return patient_address(patient, message.channel) if patient else None

    async def _final(
        self, message: OutboundMessage, status: SendStatus, **fields: object
    ) -> SendResult:
        """An attempt that sends nothing, stored as such (a retry answers the same)."""
        claimed = await asyncio.to_thread(
            records.claim, self.engine, message, status=status.value, **fields
        )
        row = claimed or await asyncio.to_thread(records.attempt, self.engine, message.attempt_id)
        return stored_result(row)  # type: ignore[arg-type]

    async def _sms(
        self, message: OutboundMessage, to: str, sender: str | None, hashed: str
    ) -> dict[str, object]:
        assert self.twilio is not None and sender is not None
        callback = public_base(self.settings) + STATUS_PATH
        try:
            accepted = await self.twilio.send(to, sender, message.body, callback)
        except Refused as refused:
            if refused.code in OPTED_OUT_CODES:
                # Twilio knows of a STOP we missed: on file now, so no case texts them again.
                await asyncio.to_thread(
                    records.set_consent,
                    self.engine,
                    hashed,
                    Medium.SMS,
                    opted_out=True,
                    keyword=refused.code,
                )
                return {"status": SendStatus.OPTED_OUT.value, "error_code": refused.code}
            if refused.code in UNREACHABLE_CODES:
                return {"status": SendStatus.UNREACHABLE.value, "error_code": refused.code}
            raise ApplicationError(
                str(refused), refused.code, type=SMS_REJECTED, non_retryable=True
            ) from None
        return {
            "status": SendStatus.SENT.value,
            "provider_id": accepted.sid,
            "segments": accepted.segments,
            "delivery": DeliveryStatus.QUEUED.value,
            "sent_at": datetime.now(UTC),
        }

    async def _email(self, message: OutboundMessage, to: str) -> dict[str, object]:
        assert self.mailer is not None
        domain = self.mailer.sender.rpartition("@")[2] or "followthrough.invalid"
        subject = message.subject or f"A message from {self.settings.outreach_sender_name}"
        try:
            message_id = await self.mailer.send(
                to, subject, message.body, message.attempt_id, domain
            )
        except RecipientRefused as refused:
            return {"status": SendStatus.UNREACHABLE.value, "error_code": str(refused.code)}
        return {
            "status": SendStatus.SENT.value,
            "provider_id": message_id,
            "sent_at": datetime.now(UTC),
        }
