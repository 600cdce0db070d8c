"""Inputs, stages and actions of the referral pathway."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from workflows.care.actions import Action, AddNote, Assign, Cancel, OpenCase
from workflows.care.calendar import BusinessCalendar
from workflows.care.messaging import Cadence, Medium, Touch
from workflows.care.models import CaseSnapshot, OrderSummary, TaskState


class Stage(StrEnum):
    UNASSIGNED = "unassigned"
    AWAITING_SCHEDULING = "awaiting_scheduling"
    SCHEDULED = "scheduled"
    AWAITING_RESULT = "awaiting_result"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PATIENT_DECLINED = "patient_declined"
    UNABLE_TO_REACH = "unable_to_reach"


CLOSED = {Stage.COMPLETED, Stage.CANCELLED, Stage.PATIENT_DECLINED, Stage.UNABLE_TO_REACH}

# How each stage reads as a FHIR R4 Task (status + businessStatus, statusReason where it explains).
TASK_STATES = {
    Stage.UNASSIGNED: TaskState(status="requested", business_status="Awaiting an owner"),
    Stage.AWAITING_SCHEDULING: TaskState(status="accepted", business_status="Awaiting scheduling"),
    Stage.SCHEDULED: TaskState(status="in-progress", business_status="Appointment scheduled"),
    Stage.AWAITING_RESULT: TaskState(status="in-progress", business_status="Awaiting result"),
    Stage.COMPLETED: TaskState(status="completed", business_status="Loop closed"),
    Stage.CANCELLED: TaskState(
        status="cancelled", business_status="Cancelled", status_reason="Cancelled by the care team"
    ),
    Stage.PATIENT_DECLINED: TaskState(
        status="cancelled",
        business_status="Patient declined",
        status_reason="Patient declined the referral",
    ),
    Stage.UNABLE_TO_REACH: TaskState(
        status="failed",
        business_status="Unable to reach patient",
        status_reason="Outreach attempts exhausted",
    ),
}


class Priority(StrEnum):
    """FHIR request-priority codes."""

    ROUTINE = "routine"
    URGENT = "urgent"
    ASAP = "asap"
    STAT = "stat"


def _touches(*steps: tuple[timedelta, Medium]) -> Cadence:
    return Cadence(touches=[Touch(after=after, channel=channel) for after, channel in steps])


DAY = timedelta(days=1)


def _cadences() -> dict[Priority, Cadence]:
    """While a case awaits scheduling: a text at once, then an email, then a person calls. The
    more urgent the order, the sooner each follows, so the call comes well inside the window to
    schedule (routine 10 business days: call on day 6; urgent 3: day 2; asap 2: day 1; stat 1:
    texted and called the same day, as stat referrals are called within a day)."""
    return {
        Priority.ROUTINE: _touches(
            (0 * DAY, Medium.SMS), (3 * DAY, Medium.EMAIL), (6 * DAY, Medium.CALL)
        ),
        Priority.URGENT: _touches(
            (0 * DAY, Medium.SMS), (1 * DAY, Medium.EMAIL), (2 * DAY, Medium.CALL)
        ),
        Priority.ASAP: _touches(
            (0 * DAY, Medium.SMS), (DAY / 2, Medium.EMAIL), (1 * DAY, Medium.CALL)
        ),
        Priority.STAT: _touches((0 * DAY, Medium.SMS), (timedelta(hours=2), Medium.CALL)),
    }


def _reminder() -> Cadence:
    # One message, by text or else by email or the portal: a call is not worth a reminder.
    return Cadence(
        touches=[Touch(after=timedelta(0), channel=Medium.SMS)],
        fallback=[Medium.SMS, Medium.EMAIL, Medium.PORTAL],
    )


class ReferralPolicy(BaseModel):
    """Windows in business days. Defaults follow common health-system norms; override per site."""

    claim_within: dict[Priority, int] = Field(
        default_factory=lambda: {
            Priority.ROUTINE: 2,
            Priority.URGENT: 1,
            Priority.ASAP: 1,
            Priority.STAT: 0,
        }
    )
    schedule_within: dict[Priority, int] = Field(
        default_factory=lambda: {
            Priority.ROUTINE: 10,
            Priority.URGENT: 3,
            Priority.ASAP: 2,
            Priority.STAT: 1,
        }
    )
    report_within: int = 10  # after the appointment
    remind_before: int = 1
    max_unreached_attempts: int = 3
    # A case continues as new past this many history events (or when Temporal suggests it).
    history_events: int = 1_000
    # Messages to the patient (cases with `ReferralInput.outreach`): the cadence while the case
    # awaits scheduling, and the appointment reminder, `remind_days_before` the visit.
    cadences: dict[Priority, Cadence] = Field(default_factory=_cadences)
    reminder: Cadence = Field(default_factory=_reminder)
    remind_days_before: int = 2


class OutreachPlan(BaseModel):
    """How a case's messages sign and where a patient calls back (from the settings)."""

    sender: str  # up to SENDER_MAX characters keep every text one segment (messages.py)
    callback_phone: str  # and up to PHONE_MAX


class ReferralInput(BaseModel):
    case_id: str
    order: OrderSummary
    priority: Priority = Priority.ROUTINE
    team: str
    location: str | None = None
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    policy: ReferralPolicy = Field(default_factory=ReferralPolicy)
    # Verify claims in the EHR and mirror the case there as a Task. Cases opened before the EHR
    # link existed decode as False and run as they always did.
    ehr: bool = False
    # Set when the case continues as new: where the previous run left it.
    snapshot: CaseSnapshot | None = None
    # The prior-authorization case of the same order, when it needs one: the visit is not
    # scheduled before it is approved.
    authorization: str | None = None
    # The case messages the patient by itself (workflows/care/outreach.py). Cases opened before
    # decode as None and never do, so their histories replay unchanged.
    outreach: OutreachPlan | None = None


class Channel(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"
    PORTAL = "portal"


class OutreachOutcome(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    LEFT_MESSAGE = "left_message"
    WRONG_NUMBER = "wrong_number"
    DECLINED = "declined"


class MarkScheduled(Action):
    """The patient has an appointment: it is checked in the EHR before the case moves on."""

    appointment: str = Field(
        pattern=r"^Appointment/[A-Za-z0-9\-.]{1,64}$",
        title="Appointment reference",
        examples=["Appointment/12345"],
        description="The FHIR Appointment id from the scheduling system",
    )
    appointment_at: datetime = Field(title="Appointment time")


class RecordOutreach(Action):
    """An attempt to reach the patient, and how it went."""

    channel: Channel = Field(title="Channel")
    outcome: OutreachOutcome = Field(title="Outcome")
    note: str = Field(default="", max_length=2000, title="Note (optional)")


class MarkCompleted(Action):
    """The visit happened and its report is back: checked in the EHR before the case closes."""

    report: str = Field(
        pattern=r"^(DiagnosticReport|DocumentReference)/[A-Za-z0-9\-.]{1,64}$",
        title="Report reference",
        examples=["DiagnosticReport/12345"],
        description="A DiagnosticReport or DocumentReference id",
    )


class PauseOutreach(Action):
    """Hold the messages to the patient (e.g. you are talking with them); resume them later."""

    reason: str = Field(default="", max_length=500, title="Reason (optional)")


class ResumeOutreach(Action):
    """Go on with the messages to the patient where they were paused."""


DOCUMENT = r"^DocumentReference/[A-Za-z0-9\-.]{1,64}$"


class RecordDocuments(Action):
    """Documents the referral needs are on file (the referral packet, outside records)."""

    documents: list[Annotated[str, Field(pattern=DOCUMENT)]] = Field(
        min_length=1,
        max_length=20,
        title="Document references",
        examples=["DocumentReference/123, DocumentReference/456"],
        description="One or more DocumentReference ids, separated by commas",
    )


class MarkNoShow(Action):
    """The patient missed the appointment: the case goes back to scheduling."""

    note: str = Field(default="", max_length=2000, title="Note (optional)")


__all__ = [
    "Action",
    "AddNote",
    "Assign",
    "Cancel",
    "MarkCompleted",
    "MarkNoShow",
    "MarkScheduled",
    "OpenCase",
    "PauseOutreach",
    "RecordDocuments",
    "RecordOutreach",
    "ReferralInput",
    "ResumeOutreach",
]
