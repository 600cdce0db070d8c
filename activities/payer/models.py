"""What the payer activities take and give back (Da Vinci PAS). Plain models, safe to import
into workflows: references and codes only, never a payload read from the EHR."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

REFERENCE = r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$"


class ReviewAction(StrEnum):
    """X12 306 (HCR01) review action codes, as PAS carries them on each item's adjudication."""

    CERTIFIED = "A1"
    PARTIAL = "A2"
    NOT_CERTIFIED = "A3"
    PENDED = "A4"
    MODIFIED = "A6"
    CANCELLED = "C"
    CONTACT_PAYER = "CT"
    NO_ACTION = "NA"


APPROVING = {ReviewAction.CERTIFIED, ReviewAction.PARTIAL, ReviewAction.MODIFIED}


class PasItem(BaseModel):
    sequence: int = Field(ge=1)
    service_code: str  # CPT / HCPCS
    service_system: str = "http://www.ama-assn.org/go/cpt"
    service_display: str | None = None
    category: str = "1"  # X12 service type code (1: medical care)
    serviced_date: date | None = None


class PasRequest(BaseModel):
    """One PAS request: a new submission, or the cancel of an earlier one."""

    case_id: str  # Claim.identifier (system urn:followthrough:case) names the case
    submission: int = Field(ge=1)  # the case's n-th submission; the Claim id is case_id-n
    patient: str = Field(pattern=REFERENCE)
    coverage: str = Field(pattern=REFERENCE)
    provider: str = Field(pattern=REFERENCE)  # Practitioner or Organization requesting
    order: str = Field(pattern=REFERENCE)  # the ServiceRequest the items are for
    items: list[PasItem] = Field(min_length=1)
    supporting: list[str] = Field(default_factory=list)  # every attached document's reference
    expedited: bool = False
    cancel: bool = False  # certificationType 3: cancel the request named by `submission`


class ItemDecision(BaseModel):
    sequence: int
    action: ReviewAction
    auth_number: str | None = None  # preAuthRef / reviewAction.number
    valid_from: date | None = None  # preAuthPeriod
    valid_to: date | None = None
    reason: str | None = None  # the payer's reason code (and its display) for a denial
    pended_reference: str | None = None  # the payer's administration reference for a pend


class PasDecision(BaseModel):
    """The payer's answer to one request, from a `$submit`, an `$inquire` or a notification."""

    case_id: str
    submission: int
    response: str  # the ClaimResponse's identifier value: one decision, however often delivered
    outcome: str  # ClaimResponse.outcome: complete | partial | error | queued
    items: list[ItemDecision] = Field(default_factory=list)
    decided_at: datetime


class PasInquiry(BaseModel):
    case_id: str
    submission: int = Field(ge=1)
    patient: str = Field(pattern=REFERENCE)
    coverage: str = Field(pattern=REFERENCE)
    provider: str = Field(pattern=REFERENCE)
