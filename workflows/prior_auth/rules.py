"""Which orders need prior authorization, and what must be on file before the request goes out.

The rules table comes from settings (PRIOR_AUTH_RULES, JSON): a payer and a service code map to
"authorization required" and the prerequisites that payer wants. An order can also say it itself,
with the Da Vinci CRD coverage-information extension (`pa-needed` = auth-needed).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

ANY_PAYER = "*"


class PrerequisiteKind(StrEnum):
    CLINICAL_NOTES = "clinical_notes"  # a DocumentReference dated within `within_days`
    IMAGING = "imaging"  # an imaging DiagnosticReport within `within_days`
    LAB = "lab"  # a laboratory Observation or DiagnosticReport within `within_days`
    CONSERVATIVE_THERAPY = "conservative_therapy"  # a Procedure lasting at least `weeks`
    COVERAGE = "coverage"  # an active Coverage whose period covers the service


# How recent evidence must be when a rule does not say, and how long therapy must have lasted.
DEFAULT_DAYS = {
    PrerequisiteKind.CLINICAL_NOTES: 30,
    PrerequisiteKind.IMAGING: 90,
    PrerequisiteKind.LAB: 30,
}
DEFAULT_WEEKS = 6


class Prerequisite(BaseModel):
    kind: PrerequisiteKind
    within_days: int | None = Field(default=None, ge=1, le=3650)  # how recent the evidence is
    weeks: int | None = Field(default=None, ge=1, le=104)  # conservative therapy's length
    codes: list[str] = Field(default_factory=list)  # qualifying codes (LOINC, CPT); [] any
    label: str | None = None  # how the checklist names it; a default follows from the kind

    @property
    def name(self) -> str:
        """Its key on the case: the kind, with the codes when a rule asks for two of a kind."""
        return self.kind.value if not self.codes else f"{self.kind.value}:{'+'.join(self.codes)}"

    @property
    def days(self) -> int | None:
        """How recent its evidence must be, in days (None: it does not go stale by age)."""
        return self.within_days or DEFAULT_DAYS.get(self.kind)

    @property
    def therapy_weeks(self) -> int:
        return self.weeks or DEFAULT_WEEKS

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        match self.kind:
            case PrerequisiteKind.CLINICAL_NOTES:
                return f"Clinical notes from the last {self.days} days"
            case PrerequisiteKind.IMAGING:
                return f"Imaging within {self.days} days"
            case PrerequisiteKind.LAB:
                return f"Lab result within {self.days} days"
            case PrerequisiteKind.CONSERVATIVE_THERAPY:
                return f"{self.therapy_weeks} weeks of documented conservative therapy"
            case PrerequisiteKind.COVERAGE:
                return "Active coverage for the date of service"


class AuthorizationRule(BaseModel):
    """One row of the rules table."""

    service: str  # the order's service code (ServiceRequest.code.coding.code, e.g. CPT 72148)
    payer: str = ANY_PAYER  # the payer's Organization id (Coverage.payor), or any payer
    required: bool = True
    prerequisites: list[Prerequisite] = Field(default_factory=list)


def rule_for(rules: list[AuthorizationRule], service_codes: list[str], payer: str | None):
    """The payer's own row for the service first, then the any-payer row; None when no row."""
    for wanted in (payer, ANY_PAYER):
        for rule in rules:
            if rule.service in service_codes and rule.payer == wanted:
                return rule
    return None
