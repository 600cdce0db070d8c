"""The shapes every pathway shares: who acted, what happened, and what a case looks like."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from workflows.care.messaging import Cadence


class Role(StrEnum):
    COORDINATOR = "coordinator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SYSTEM = "system"


class Actor(BaseModel):
    """Who did something. Set by the API from the caller's token, never from the request body."""

    user_id: str
    role: Role
    team: str | None = None


SYSTEM = Actor(user_id="system", role=Role.SYSTEM)


class EventKind(StrEnum):
    OPENED = "opened"
    ASSIGNED = "assigned"
    STAGE_CHANGED = "stage_changed"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    OUTREACH = "outreach"
    NOTE = "note"
    NO_SHOW = "no_show"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    VERIFIED = "verified"
    REWORK = "rework"
    EXCEPTION_RAISED = "exception_raised"
    EXCEPTION_CLEARED = "exception_cleared"
    DOCUMENTS_RECEIVED = "documents_received"
    # Requests to a payer (prior authorization) and their answers. A DECIDED event's details
    # carry `decision` (approved, denied, pended, cancelled, contact_payer), `submission` and,
    # for a denial, `reason` (the payer's reason code and text): metrics read them.
    SUBMITTED = "submitted"
    DECIDED = "decided"
    LAPSED = "lapsed"  # an authorization ran out with the service not delivered
    WAIVED = "waived"  # a checklist item waived by a supervisor, with the reason
    EXPIRED = "expired"  # a checklist item's evidence stopped counting
    # Messages to the patient (workflows/care/outreach.py). OUTREACH is also what a person
    # records by hand; an automated attempt's details carry `attempt`, `channel`, `status` (a
    # SendStatus), `kind` (the template) and, for SMS, `segments`. DELIVERY details: `attempt`,
    # `channel`, `status` (a final DeliveryStatus), `error_code`. REPLY details: `attempt`,
    # `channel`, `reply` (a ReplyKind), `text`. CONSENT details: `channel`, `consent` (opted_out
    # or opted_in), `keyword`. A staff call task the cadence opens is an OUTREACH event with
    # `channel` call and `status` task.
    DELIVERY = "delivery"
    REPLY = "reply"
    CONSENT = "consent"


class Evidence(BaseModel):
    """What was found in the EHR (or claimed, when `sha256` is empty) for a step of the case."""

    reference: str  # e.g. "Appointment/123"
    version_id: str | None = None
    last_updated: str | None = None
    sha256: str | None = None


class TimelineEvent(BaseModel):
    seq: int
    at: datetime
    kind: EventKind
    actor: str
    role: Role
    summary: str
    stage_before: str | None = None
    stage_after: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)


class LedgerEntry(BaseModel):
    """One timeline event as the audit ledger keeps it: with the case's context and its hash."""

    case_id: str
    seq: int
    at: datetime
    kind: str
    actor: str
    role: str
    summary: str
    stage_before: str | None = None
    stage_after: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)
    case_type: str
    team: str
    location: str | None = None
    priority: str | None = None
    pathway: str
    pathway_version: str
    case_closed: bool = False
    prev_hash: str
    hash: str = ""
    # 1: the hash covers every field, the summary's wording included (entries written before
    # 2026-11-25); 2: it covers the structured event only, so rewording a summary or bumping the
    # pathway's version never changes a hash that a replaying case recomputes.
    hash_scheme: int = 1

    def content(self) -> dict:
        """What the hash covers."""
        if self.hash_scheme == 1:
            return self.model_dump(mode="json", exclude={"hash", "hash_scheme"})
        return self.model_dump(mode="json", exclude=PRESENTATION)


# What a scheme-2 hash leaves out: the hash itself, and words that describe the event rather than
# being it (the summary is rendered from the structured fields; the version names the code).
PRESENTATION = {"hash", "summary", "pathway_version"}
HASH_SCHEME = 2  # what new cases write


class LedgerBatch(BaseModel):
    entries: list[LedgerEntry]


class TaskState(BaseModel):
    """How a stage reads as a FHIR R4 Task: status, businessStatus and, where needed, statusReason."""

    status: str
    business_status: str
    status_reason: str | None = None


class OrderSummary(BaseModel):
    """Minimum necessary about the order: references and the service's display text."""

    resource: str  # e.g. "ServiceRequest/abc"
    patient: str  # e.g. "Patient/123"
    service: str
    requester: str | None = None
    authored_on: datetime | None = None


class ChecklistItem(BaseModel):
    """Something that must be on file before the case can go on (a prior-authorization
    prerequisite, a discharge document): its owner, its due date, its evidence and how long that
    evidence counts."""

    name: str  # its key on the case
    title: str  # how people read it
    status: str = "open"  # open | met | waived | expired
    owner: str | None = None
    due_at: datetime | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    observed_at: datetime | None = None  # the evidence's own date
    expires_at: datetime | None = None  # when the evidence stops counting
    note: str | None = None  # why it is open (what is missing), or the waiver's reason


class OutreachAttempt(BaseModel):
    """One message the case sent (or tried to): where it stands as the provider reports it. A
    staff call task is an attempt too (channel "call", status "task"), never sent."""

    attempt_id: str
    number: int  # 1, 2, ... within the case
    channel: str  # a Medium
    kind: str  # the template
    at: datetime
    status: str  # a SendStatus, or "task" for a call
    delivery: str | None = None  # a DeliveryStatus, once the provider reports one
    error_code: str | None = None
    segments: int = 0
    replies: int = 0
    touch: int | None = None  # which touch of its cadence it was (a failed delivery re-sends it)
    provider_id: str | None = None  # the provider's id (Twilio SM…, Message-ID, outbox row)


class OutreachState(BaseModel):
    """A case's outreach cadence: what it sent, what comes next, and what stops it."""

    state: str = "idle"  # idle | running | paused | stopped | done
    stopped_reason: str | None = None  # replied, scheduled, paused by ..., cadence done
    next_at: datetime | None = None  # when the next touch is due (quiet hours applied)
    next_channel: str | None = None
    attempts: list[OutreachAttempt] = Field(default_factory=list)  # the newest few
    opted_out: list[str] = Field(default_factory=list)  # channels the patient opted out of
    unreachable: list[str] = Field(default_factory=list)  # channels whose address failed
    timezone: str | None = None  # the patient's, for quiet hours
    # The cadence under way (see workflows/care/outreach.py): its messages' kind, its touches,
    # when it started (moved on by the time it spent paused), the next touch and the channels
    # already tried for it.
    kind: str | None = None
    cadence: Cadence | None = None
    started_at: datetime | None = None
    paused_at: datetime | None = None
    touch: int = 0
    tried: list[str] = Field(default_factory=list)
    # What the patient's record says: the channels with an address on file, the language.
    channels: list[str] = Field(default_factory=list)
    language: str = "en"
    sent: int = 0  # attempts numbered so far (the next is sent + 1)
    sms_used: bool = False  # an SMS went out: its conversation is released when the case closes
    seen: list[str] = Field(default_factory=list)  # the newest replies' message ids (dedupe)


class CaseDetail(BaseModel):
    case_id: str
    case_type: str
    stage: str
    task: TaskState
    closed: bool = False
    priority: str
    team: str
    owner: str | None = None
    location: str | None = None
    order: OrderSummary
    opened_at: datetime
    due_at: datetime | None = None
    stalled: bool = False
    counters: dict[str, int] = Field(default_factory=dict)
    references: dict[str, str] = Field(default_factory=dict)
    moments: dict[str, datetime] = Field(default_factory=dict)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    created: bool = False  # true only in the answer to the request that opened the case
    ledger_pending: int = 0  # timeline events the audit ledger has yet to store
    # Every event the case has recorded; `timeline` holds the newest of them (the ledger has all).
    events: int = 0
    ledger_error: str | None = None  # the ledger refused an entry: the case holds until fixed
    notices_pending: int = 0  # staff notices still being delivered beside the case
    run: int = 1  # the workflow run this is; a long-lived case continues as new now and then
    checklist: list[ChecklistItem] = Field(default_factory=list)  # pathways that keep one
    outreach: OutreachState | None = None  # pathways that message the patient


class ActionAck(BaseModel):
    """What an action answers with, and what its update leaves in the case's history: small and
    of fixed size, however long the case lives (the whole case is read by query)."""

    case_id: str
    stage: str
    closed: bool = False
    owner: str | None = None
    events: int = 0  # the case's newest event seq once the action was taken
    created: bool = False  # the opening request only: true when it opened the case


class CaseSnapshot(BaseModel):
    """A case as it continues as new: everything its next run needs to go on where it was."""

    stage: str
    owner: str | None = None
    stalled: bool = False
    opened_at: datetime
    counters: dict[str, int] = Field(default_factory=dict)
    references: dict[str, str] = Field(default_factory=dict)
    moments: dict[str, datetime] = Field(default_factory=dict)
    timeline: list[TimelineEvent] = Field(default_factory=list)  # the newest events only
    seq: int  # the last event's number: the next one goes on from here
    last_hash: str  # the ledger chain's head
    hash_scheme: int = 1
    climbed: list[str] = Field(default_factory=list)  # ladder steps taken in this stage's visit
    opened_by_request: bool = False
    run: int = 1
    # The EHR link: the Task as last mirrored, and EHR events not yet acted on.
    mirrored: bool = False
    ehr_events: list[dict] = Field(default_factory=list)
    checklist: list[ChecklistItem] = Field(default_factory=list)
    outreach: OutreachState | None = None


class CaseOutcome(BaseModel):
    case_id: str
    stage: str
    closed_at: datetime
    counters: dict[str, int] = Field(default_factory=dict)


class StaffNotice(BaseModel):
    """A reminder or escalation addressed to a person or to a role within a team."""

    case_id: str
    kind: EventKind
    team: str
    role: Role
    user_id: str | None = None
    message: str
    due_at: datetime | None = None
