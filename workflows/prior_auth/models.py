"""Inputs, stages and actions of the prior-authorization pathway."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from workflows.care.actions import Action, AddNote, Assign, Cancel, OpenCase
from workflows.care.calendar import BusinessCalendar
from workflows.care.models import CaseSnapshot, OrderSummary, TaskState
from workflows.prior_auth.rules import Prerequisite


class Stage(StrEnum):
    COLLECTING = "collecting"  # prerequisites being put on file
    SUBMITTED = "submitted"  # the request is with the payer, its answer not yet read
    PENDED = "pended"  # the payer is reviewing: its decision comes by notification
    APPROVED = "approved"  # authorized: the service must be delivered inside the validity
    DENIED = "denied"  # the owner decides: appeal or close
    APPEALING = "appealing"  # more documents, a peer-to-peer review, then a new request
    DELIVERED = "delivered"  # the service was delivered under the authorization
    CANCELLED = "cancelled"
    CLOSED_DENIED = "closed_denied"  # denied, and closed without (another) appeal


CLOSED = {Stage.DELIVERED, Stage.CANCELLED, Stage.CLOSED_DENIED}
# Stages in which the request is still to be decided: a prerequisite going stale matters here.
UNDECIDED = {Stage.COLLECTING, Stage.SUBMITTED, Stage.PENDED, Stage.DENIED, Stage.APPEALING}
# Stages in which a request is out with the payer: cancelling the case cancels it there too.
REQUEST_OUT = {Stage.SUBMITTED, Stage.PENDED, Stage.APPROVED}
# Where actions fit, said once for the workflow's validators and the pathway's declaration.
PREPARING = (Stage.COLLECTING, Stage.APPEALING)  # the request is put together: submit, waive
ATTACHING = (Stage.COLLECTING, Stage.PENDED, Stage.DENIED, Stage.APPEALING)
DECIDING_APPEAL = (Stage.DENIED, Stage.APPEALING)  # the denial may still be closed

TASK_STATES = {
    Stage.COLLECTING: TaskState(status="in-progress", business_status="Collecting prerequisites"),
    Stage.SUBMITTED: TaskState(status="in-progress", business_status="Submitted to the payer"),
    Stage.PENDED: TaskState(
        status="on-hold",
        business_status="Pended by the payer",
        status_reason="Awaiting the payer's decision",
    ),
    Stage.APPROVED: TaskState(status="in-progress", business_status="Authorized; awaiting service"),
    Stage.DENIED: TaskState(
        status="on-hold", business_status="Denied; appeal or close", status_reason="Denied"
    ),
    Stage.APPEALING: TaskState(status="in-progress", business_status="Appealing the denial"),
    Stage.DELIVERED: TaskState(status="completed", business_status="Service delivered"),
    Stage.CANCELLED: TaskState(
        status="cancelled", business_status="Cancelled", status_reason="Cancelled by the care team"
    ),
    Stage.CLOSED_DENIED: TaskState(
        status="failed",
        business_status="Closed after denial",
        status_reason="Denied by the payer and not appealed",
    ),
}


class PriorAuthPolicy(BaseModel):
    """Windows of the pathway. Business days unless named otherwise; override per site."""

    collect_within: int = 5  # prerequisites on file and the request out
    remind_before: int = 1  # the owner is reminded this many business days before a deadline
    decide_appeal_within: int = 3  # after a denial: appeal or close
    appeal_within: int = 10  # an appeal's new request out (documents only)
    peer_to_peer_within: int = 5  # an appeal with a peer-to-peer review: held and resubmitted
    deliver_remind_before: int = 5  # before the authorization ends, the service still undelivered
    # CMS-0057-F: a payer decides an expedited request within 72 hours, a standard one within 7
    # calendar days. Past it the team's supervisor is told and the payer asked once.
    expedited_hours: int = 72
    standard_days: int = 7
    # A case continues as new past this many history events (or when Temporal suggests it).
    history_events: int = 1_000


class ServiceItem(BaseModel):
    """A service the request asks for, as a PAS item names it (Claim.item.productOrService)."""

    code: str = Field(min_length=1, max_length=64)
    system: str = "http://www.ama-assn.org/go/cpt"
    display: str | None = None


class PriorAuthInput(BaseModel):
    case_id: str
    order: OrderSummary
    team: str
    priority: str = "routine"  # the order's FHIR request priority
    location: str | None = None
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    policy: PriorAuthPolicy = Field(default_factory=PriorAuthPolicy)
    # Mirror the case in the EHR as a Task and act on EHR events. Prerequisites are checked in
    # the EHR either way: without it there is nothing to authorize on.
    ehr: bool = True
    snapshot: CaseSnapshot | None = None
    items: list[ServiceItem] = Field(min_length=1)
    coverage: str | None = None  # "Coverage/<id>"; None: the coverage prerequisite finds it
    payer: str | None = None  # "Organization/<id>" (Coverage.payor), when known at intake
    provider: str | None = None  # the ordering Practitioner or Organization
    expedited: bool = False  # CMS-0057-F expedited: the payer decides within 72 hours
    prerequisites: list[Prerequisite] = Field(default_factory=list)
    referral: str | None = None  # the referral case of the same order, told of decisions


class AuthorizationNews(BaseModel):
    """What a referral case is told when its order's authorization changes in a way that decides
    whether the visit may be scheduled: approved, denied, lapsed, cancelled, closed."""

    authorization: str  # the prior-authorization case id
    stage: str
    submission: int = 0
    auth_number: str | None = None
    authorized_until: datetime | None = None


# -- actions ------------------------------------------------------------------------------------

DOCUMENT = r"^DocumentReference/[A-Za-z0-9\-.]{1,64}$"
PREREQUISITE_NAME = r"^[a-z_]+(:[A-Za-z0-9.+\-]{1,200})?$"


class AttachDocument(Action):
    """A document that meets a prerequisite (or supports the request): it is checked in the EHR,
    and goes to the payer with the request."""

    document: str = Field(
        pattern=DOCUMENT,
        title="Document reference",
        description="The FHIR DocumentReference id of the note, report or letter",
        examples=["DocumentReference/note-123"],
    )
    prerequisite: str | None = Field(
        default=None,
        pattern=PREREQUISITE_NAME,
        title="For prerequisite (optional)",
        description="The checklist item it meets; leave empty for a supporting document",
        examples=["clinical_notes"],
    )


class WaivePrerequisite(Action):
    """Go ahead without a prerequisite (supervisors): the payer does not need it for this
    patient, or it cannot be had. The reason goes on the record."""

    prerequisite: str = Field(
        pattern=PREREQUISITE_NAME,
        title="Prerequisite",
        description="The checklist item to waive",
        examples=["conservative_therapy"],
    )
    reason: str = Field(
        min_length=10,
        max_length=500,
        title="Reason",
        description="Why the request can go without it (at least 10 characters)",
        examples=["Payer's policy exempts post-surgical imaging from the therapy requirement"],
    )


class SubmitNow(Action):
    """Send the request to the payer now (every prerequisite met or waived): after an appeal's
    documents are in, or to try again after the payer refused the request."""

    note: str = Field(
        default="",
        max_length=2000,
        title="Note (optional)",
        description="What changed since the last request",
        examples=["Added the orthopedic consult note"],
    )


class RecordPayerCall(Action):
    """A call with the payer about the request: its reference number and what was said."""

    reference_number: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9\-]+$",
        title="Call reference number",
        description="The payer's reference for the call",
        examples=["CALL-20261125-0042"],
    )
    note: str = Field(
        min_length=3,
        max_length=2000,
        title="Note",
        description="What the payer said (no more patient detail than needed)",
        examples=["Reviewer needs the physical therapy discharge summary"],
    )
    peer_to_peer: bool = Field(
        default=False,
        title="This was the peer-to-peer review",
        description="The ordering clinician spoke with the payer's reviewer",
    )


class StartAppeal(Action):
    """Appeal the denial: add documents and/or hold a peer-to-peer review, then submit a new
    request (a denied request cannot be updated)."""

    peer_to_peer: bool = Field(
        default=False,
        title="Peer-to-peer review",
        description="The ordering clinician will discuss the case with the payer's reviewer",
    )
    note: str = Field(
        default="",
        max_length=2000,
        title="Note (optional)",
        description="The grounds of the appeal",
        examples=["Conservative therapy was documented by the outside clinic"],
    )


class CloseDenied(Action):
    """Close the case without appealing the denial."""

    reason: str = Field(
        min_length=3,
        max_length=500,
        title="Reason",
        description="Why it is not appealed (at least 3 characters)",
        examples=["Ordering clinician chose an alternative treatment"],
    )


class MarkDelivered(Action):
    """The authorized service was delivered: its report is checked in the EHR."""

    report: str = Field(
        pattern=r"^(DiagnosticReport|DocumentReference)/[A-Za-z0-9\-.]{1,64}$",
        title="Report reference",
        description="The DiagnosticReport or DocumentReference of the delivered service",
        examples=["DiagnosticReport/mri-123"],
    )


__all__ = [
    "Action",
    "AddNote",
    "Assign",
    "AttachDocument",
    "Cancel",
    "CloseDenied",
    "MarkDelivered",
    "OpenCase",
    "PriorAuthInput",
    "RecordPayerCall",
    "StartAppeal",
    "SubmitNow",
    "WaivePrerequisite",
]
