"""The action forms a case page offers, and how a submitted form becomes an action body.

Which actions fit which stage mirrors the referral pathway's update validators, so the page offers
only what the case would accept; the case itself still decides (a stale page gets its reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from workers.settings import Settings
from workflows.care.models import Actor, CaseDetail, Role
from workflows.referral.models import Channel, OutreachOutcome, Stage


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, textarea, select, datetime, list (comma- or space-separated)
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    placeholder: str = ""
    hint: str = ""


@dataclass(frozen=True)
class ActionForm:
    key: str  # unique on the page (claim and reassign are both the `assign` action)
    action: str  # the action's URL name in api.cases.ACTIONS
    title: str
    button: str
    stages: frozenset[str] | None = None  # None: any open stage
    fields: tuple[Field, ...] = field(default_factory=tuple)
    danger: bool = False


def _choices(enum: type) -> tuple[tuple[str, str], ...]:
    return tuple((item.value, item.value.replace("_", " ").capitalize()) for item in enum)


CLAIM = ActionForm("claim", "assign", "Claim", "Claim this case")
REASSIGN = ActionForm(
    "reassign",
    "assign",
    "Assign to someone else",
    "Assign",
    fields=(Field("owner", "Assign to (user id)", required=True, placeholder="e.g. cora"),),
)
FORMS = (
    ActionForm(
        "mark-scheduled",
        "mark-scheduled",
        "Mark scheduled",
        "Mark scheduled",
        frozenset({Stage.AWAITING_SCHEDULING}),
        (
            Field(
                "appointment",
                "Appointment reference",
                required=True,
                placeholder="Appointment/12345",
                hint="The FHIR Appointment id from the scheduling system",
            ),
            Field("appointment_at", "Appointment time", "datetime", required=True),
        ),
    ),
    ActionForm(
        "record-outreach",
        "record-outreach",
        "Record outreach attempt",
        "Record attempt",
        frozenset({Stage.AWAITING_SCHEDULING, Stage.SCHEDULED}),
        (
            Field("channel", "Channel", "select", True, _choices(Channel)),
            Field("outcome", "Outcome", "select", True, _choices(OutreachOutcome)),
            Field("note", "Note (optional)", "textarea"),
        ),
    ),
    ActionForm(
        "mark-completed",
        "mark-completed",
        "Mark completed",
        "Mark completed",
        frozenset({Stage.SCHEDULED, Stage.AWAITING_RESULT}),
        (
            Field(
                "report",
                "Report reference",
                required=True,
                placeholder="DiagnosticReport/12345",
                hint="A DiagnosticReport or DocumentReference id",
            ),
        ),
    ),
    ActionForm(
        "record-documents",
        "record-documents",
        "Record documents received",
        "Record documents",
        None,
        (
            Field(
                "documents",
                "Document references",
                "list",
                True,
                placeholder="DocumentReference/123, DocumentReference/456",
                hint="One or more DocumentReference ids, separated by commas",
            ),
        ),
    ),
    ActionForm(
        "mark-no-show",
        "mark-no-show",
        "Record no-show",
        "Record no-show",
        frozenset({Stage.SCHEDULED, Stage.AWAITING_RESULT}),
        (Field("note", "Note (optional)", "textarea"),),
    ),
    ActionForm(
        "add-note",
        "add-note",
        "Add a note",
        "Add note",
        None,
        (Field("text", "Note", "textarea", True),),
    ),
    ActionForm(
        "cancel",
        "cancel",
        "Cancel the referral",
        "Cancel case",
        None,
        (Field("reason", "Reason", "textarea", True, hint="At least 3 characters"),),
        danger=True,
    ),
)
BY_KEY = {form.key: form for form in (CLAIM, REASSIGN, *FORMS)}


def offered(case: CaseDetail, actor: Actor) -> list[ActionForm]:
    """The forms this person may use on this case now: none for auditors or closed cases."""
    if case.closed or actor.role in (Role.AUDITOR, Role.SYSTEM):
        return []
    if actor.role != Role.ADMIN and actor.team != case.team:
        return []
    forms: list[ActionForm] = []
    if case.owner != actor.user_id:
        forms.append(CLAIM)
    if actor.role in (Role.SUPERVISOR, Role.ADMIN):
        forms.append(REASSIGN)
    forms += [f for f in FORMS if f.stages is None or case.stage in f.stages]
    return forms


def action_body(form: ActionForm, values: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Form values to the action's JSON body. A datetime-local value is clinic-local time."""
    body: dict[str, Any] = {}
    for spec in form.fields:
        value = values.get(spec.name, "").strip()
        if not value:
            continue  # blank optional fields fall back to the model's default; required fail there
        if spec.kind == "datetime":
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                body[spec.name] = value  # let the model report it as an invalid datetime
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(settings.clinic_timezone))
            body[spec.name] = moment.isoformat()
        elif spec.kind == "list":
            body[spec.name] = [item for item in re.split(r"[,\s]+", value) if item]
        else:
            body[spec.name] = value
    return body


def error_text(detail: Any) -> str:
    """The service layer's rejection as one sentence a person can act on."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
            parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        return "; ".join(parts)
    return str(detail)
