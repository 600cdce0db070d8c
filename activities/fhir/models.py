"""What the EHR activities take and give back. Plain models, safe to import into workflows.

Evidence is the care kit's: a resource version (reference, versionId, lastUpdated) and the SHA-256
of its canonical JSON (see activities/fhir/evidence.py).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from workflows.care.models import Evidence
from workflows.prior_auth.rules import Prerequisite

REFERENCE = r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$"


class Verdict(BaseModel):
    """Whether the EHR shows the step happened; if not, why, in words the case owner can act on."""

    verified: bool
    reason: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    appointment_at: datetime | None = None  # the appointment's start, when one was verified


class AppointmentCheck(BaseModel):
    """Is there a booked appointment for this order? `appointment` is the one the care team named;
    without it, any appointment linked to the order counts (booked directly in the EHR)."""

    order: str = Field(pattern=REFERENCE)
    patient: str = Field(pattern=REFERENCE)
    appointment: str | None = Field(default=None, pattern=REFERENCE)
    not_before: datetime  # start of the clinic's today: earlier appointments do not count


class ReportCheck(BaseModel):
    """Is the order done: completed in the EHR, or a report filed for it?"""

    order: str = Field(pattern=REFERENCE)
    patient: str = Field(pattern=REFERENCE)
    report: str | None = Field(default=None, pattern=REFERENCE)


class DocumentsCheck(BaseModel):
    """Are these DocumentReferences on file for the patient?"""

    order: str = Field(pattern=REFERENCE)
    patient: str = Field(pattern=REFERENCE)
    documents: list[str] = Field(min_length=1, max_length=50)


class TaskMirror(BaseModel):
    """A case as the EHR sees it: one FHIR Task, rewritten at every stage change."""

    case_id: str
    order: str = Field(pattern=REFERENCE)  # Task.focus
    patient: str = Field(pattern=REFERENCE)  # Task.for
    status: str
    business_status: str
    status_reason: str | None = None
    team: str
    owner: str | None = None
    due_at: datetime | None = None  # Task.restriction.period.end


class TaskWritten(BaseModel):
    task: str  # "Task/<id>"; empty when refused
    version_id: str | None = None
    merged_concurrent_edit: bool = False
    refused: str | None = None  # the EHR's reason when it refused the write (a 4xx)


class EhrEvent(BaseModel):
    """Something about a case changed in the EHR (found by detection or pushed by a notification):
    the resource, and its status when it was noticed. The case reads the EHR itself to act."""

    resource: str = Field(pattern=REFERENCE)
    status: str | None = None

    @property
    def resource_type(self) -> str:
        return self.resource.split("/", 1)[0]


class PrerequisiteCheck(BaseModel):
    """Is this prior-authorization prerequisite on file, fresh enough? `documents` are references
    the care team attached; the EHR is searched for the patient's own records besides."""

    order: str = Field(pattern=REFERENCE)
    patient: str = Field(pattern=REFERENCE)
    prerequisite: Prerequisite
    service_date: date | None = None  # coverage must cover it; None: today
    coverage: str | None = Field(default=None, pattern=REFERENCE)  # the order's Coverage, if named
    documents: list[str] = Field(default_factory=list, max_length=50)
    # The case's own time: freshness is judged as of it (None: the activity's clock).
    as_of: datetime | None = None


class PrerequisiteFound(BaseModel):
    """The freshest evidence that meets it, and until when it counts; or why nothing does."""

    met: bool
    reason: str = ""  # why not, in words the owner can act on, without the record's content
    evidence: list[Evidence] = Field(default_factory=list)
    observed_at: datetime | None = None  # the evidence's own date (note, result, therapy start)
    expires_at: datetime | None = None  # when it stops counting (date + within_days, period end)
    payer: str | None = None  # coverage only: the payer's Organization reference
    coverage: str | None = None  # coverage only: the Coverage found
