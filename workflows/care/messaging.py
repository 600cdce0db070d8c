"""Messages to patients: the rules every message obeys, and the shapes the case, the messaging
activities and the webhooks exchange.

Pure and deterministic, so a workflow decides with them: which words opt a patient out or in,
when a text may go out in the patient's own time zone (47 CFR 64.1200(c)(1)), and how many SMS
segments a text takes. No address (phone number, email) ever travels in these shapes: the sending
activity reads it from the EHR, and the case knows only which channels reach the patient.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

# Signals a case that sends messages takes (sent by the messaging webhooks).
REPLY_SIGNAL = "patient_replied"
DELIVERY_SIGNAL = "message_status"

QUIET_UNTIL = time(8, 0)  # no text before 8:00 ...
QUIET_FROM = time(21, 0)  # ... or from 21:00, in the recipient's local time

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})


class Medium(StrEnum):
    """How a case reaches the patient. CALL is a person's work: a staff task, never sent."""

    SMS = "sms"
    EMAIL = "email"
    PORTAL = "portal"
    CALL = "call"


class ReplyKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CONFIRM = "confirm"  # "1" or "YES" (while opted in): confirms the appointment
    CALL_BACK = "call_back"  # "2": the patient asks for a call
    OTHER = "other"  # anything else: on the timeline for a person to read


def classify(body: str, *, opted_out: bool = False) -> ReplyKind:
    """What a patient's text means. Keywords match the whole body, one word, any case. YES opts a
    patient back in when they have opted out; otherwise it confirms, as "1" does."""
    word = body.strip().upper()
    if word in OPT_OUT:
        return ReplyKind.OPT_OUT
    if word == "YES":
        return ReplyKind.OPT_IN if opted_out else ReplyKind.CONFIRM
    if word in OPT_IN:
        return ReplyKind.OPT_IN
    if word in HELP:
        return ReplyKind.HELP
    if word == "1":
        return ReplyKind.CONFIRM
    if word == "2":
        return ReplyKind.CALL_BACK
    return ReplyKind.OTHER


def send_window(moment: datetime, timezone: str) -> datetime:
    """The first instant at or after `moment` when a text may reach a patient in `timezone`:
    `moment` itself between 8:00 and 21:00 local time, else 8:00 local on the next morning (a
    wall-clock time, so daylight-saving changes move it in UTC as they should)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    if QUIET_UNTIL <= local.time() < QUIET_FROM:
        return moment
    day = local.date() if local.time() < QUIET_UNTIL else local.date() + timedelta(days=1)
    return datetime.combine(day, QUIET_UNTIL, zone)


# GSM 03.38: the basic set (one septet each) and its extension table (two: escape + char).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(text: str) -> int:
    """How many SMS segments `text` takes: GSM-7 fits 160 septets in one, 153 per segment when
    concatenated; anything outside GSM-7 goes as UCS-2, 70 code units in one, 67 when split."""
    if all(char in GSM_BASIC or char in GSM_EXTENDED for char in text):
        units = sum(2 if char in GSM_EXTENDED else 1 for char in text)
        single, part = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / part)


# -- a pathway's cadence ------------------------------------------------------------------------


class Touch(BaseModel):
    """One step of a cadence: `after` its start, reach the patient by `channel` (or, when that
    channel cannot reach them, by the next one of the cadence's fallback order)."""

    after: timedelta
    channel: Medium


def _usual_fallback() -> list[Medium]:
    return [Medium.SMS, Medium.EMAIL, Medium.PORTAL, Medium.CALL]


class Cadence(BaseModel):
    """How a pathway tries to reach a patient: its touches in order, and the channels to fall
    back on, best first. CALL is the last resort: a person's task, always possible."""

    touches: list[Touch]
    fallback: list[Medium] = Field(default_factory=_usual_fallback)

    def channels_for(self, touch: Touch) -> list[Medium]:
        """The touch's own channel, then those after it in the fallback order."""
        order = self.fallback
        later = order[order.index(touch.channel) + 1 :] if touch.channel in order else order
        return [touch.channel, *(channel for channel in later if channel != touch.channel)]


# -- what the case, the activities and the webhooks exchange ------------------------------------


class PatientContact(BaseModel):
    """Which channels reach the patient (a configured provider and an address on file) and how
    to address them; never the addresses themselves."""

    patient: str  # "Patient/123"
    sms: bool = False
    email: bool = False
    portal: bool = True
    timezone: str  # IANA, the patient's own; the clinic's when the EHR does not say
    language: str = "en"  # BCP-47 primary tag of the patient's preferred language


class OutboundMessage(BaseModel):
    """One attempt to reach the patient, rendered by the case; `attempt_id` makes it once-only."""

    attempt_id: str  # "<case id>-m<n>": the send's idempotency key, and the reply's match
    case_id: str
    patient: str
    order: str  # the order it is about ("ServiceRequest/…"): the Communication's basedOn
    channel: Medium  # SMS, EMAIL or PORTAL
    kind: str  # the template, e.g. "referral.schedule"
    language: str = "en"
    subject: str | None = None  # email and portal
    body: str


class SendStatus(StrEnum):
    SENT = "sent"  # handed to the provider (Twilio queued/accepted, SMTP accepted, outbox stored)
    OPTED_OUT = "opted_out"  # the patient opted out of this channel: nothing was sent
    UNREACHABLE = "unreachable"  # the address is invalid or known undeliverable
    NO_ADDRESS = "no_address"  # no address on file (or the channel is not configured)
    BUSY = "busy"  # SMS: every sender number already talks with this patient for another case


class SendResult(BaseModel):
    attempt_id: str
    status: SendStatus
    provider_id: str | None = None  # Twilio SM… sid, SMTP Message-ID, outbox row id
    segments: int = 0  # SMS: as the provider counted them
    error_code: str | None = None  # the provider's, e.g. Twilio 21610 (recipient opted out)
    sent_at: datetime | None = None


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


FINAL = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED})


class DeliveryNews(BaseModel):
    """A provider's delivery status for one attempt (signal DELIVERY_SIGNAL; final ones only)."""

    attempt_id: str
    provider_id: str
    status: DeliveryStatus
    error_code: str | None = None
    at: datetime


class ReplyNews(BaseModel):
    """A patient's message, matched to the attempt it answers (signal REPLY_SIGNAL)."""

    message_id: str  # the provider's id of the inbound message
    in_reply_to: str  # the attempt_id of the outbound message it answers
    channel: Medium
    kind: ReplyKind  # `classify` as the webhook applied it (with the patient's consent on file)
    body: str = Field(max_length=1600)
    at: datetime


class CommunicationRecord(BaseModel):
    """One attempt as a FHIR R4 Communication in the EHR, written once (identifier attempt_id)."""

    attempt_id: str
    patient: str
    order: str
    channel: Medium
    status: str  # FHIR Communication.status: completed, not-done, ...
    status_reason: str | None = None  # for not-done: opted out, unreachable, no address
    sent: datetime | None = None
    text: str  # what the patient was sent (payload.contentString)
