"""The action forms a case page offers, derived from the pathway's declared actions and their
models, and how a submitted form becomes an action body.

A field's widget follows from its type (a choice list for an enum, a date-time picker, a
checkbox, a comma-separated list, a text area for long text), its label from its `title`, the
help under it from its `description`, the placeholder from its `examples`. Which actions a page
offers follows the declaration's stages and roles, so the page offers only what the case would
accept; the case itself still decides (a stale page gets its reason).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from annotated_types import MaxLen
from pydantic.fields import FieldInfo

from workers.settings import Settings
from workflows import pathways
from workflows.care.actions import Assign
from workflows.care.models import Actor, CaseDetail, Role
from workflows.care.pathway import ActionSpec

LONG_TEXT = 200  # a text field allowing more than this many characters is a text area


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, textarea, select, datetime, date, checkbox, list (comma-separated)
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    placeholder: str = ""
    hint: str = ""


@dataclass(frozen=True)
class ActionForm:
    key: str  # unique on the page (claim and reassign are both the `assign` action)
    action: str  # the action's name in the URL
    title: str
    button: str
    spec: ActionSpec
    fields: tuple[Field, ...] = field(default_factory=tuple)
    danger: bool = False
    supervisors_only: bool = False  # reassigning to someone else


def _choices(enum: type[Enum]) -> tuple[tuple[str, str], ...]:
    return tuple((item.value, item.value.replace("_", " ").capitalize()) for item in enum)


def _unwrap(annotation: Any) -> Any:
    """`X | None` is X (optional); Annotated[X, ...] is X."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def form_field(name: str, info: FieldInfo) -> Field:
    kind: str = "text"
    options: tuple[tuple[str, str], ...] = ()
    annotation = _unwrap(info.annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        kind, options = "select", _choices(annotation)
    elif annotation is datetime:
        kind = "datetime"
    elif annotation is date:
        kind = "date"
    elif annotation is bool:
        kind = "checkbox"
    elif typing.get_origin(annotation) is list:
        kind = "list"
    elif any(isinstance(m, MaxLen) and m.max_length > LONG_TEXT for m in info.metadata):
        kind = "textarea"
    return Field(
        name=name,
        label=info.title or name.replace("_", " ").capitalize(),
        kind=kind,
        required=info.is_required() and kind != "checkbox",
        options=options,
        placeholder=str(info.examples[0]) if info.examples else "",
        hint=info.description or "",
    )


def forms_of(spec: ActionSpec) -> list[ActionForm]:
    if spec.model is Assign:
        # One action, two forms: claim it yourself, or (supervisors) give it to someone else.
        owner = form_field("owner", Assign.model_fields["owner"])
        owner = Field(owner.name, owner.label, required=True, placeholder=owner.placeholder)
        return [
            ActionForm("claim", spec.name, "Claim", "Claim this case", spec),
            ActionForm(
                "reassign",
                spec.name,
                "Assign to someone else",
                "Assign",
                spec,
                (owner,),
                supervisors_only=True,
            ),
        ]
    fields = tuple(
        form_field(name, info) for name, info in spec.model.model_fields.items() if name != "actor"
    )
    button = spec.button or spec.title
    return [ActionForm(spec.name, spec.name, spec.title, button, spec, fields, spec.danger)]


def all_forms(case_id: str) -> dict[str, ActionForm]:
    pathway = pathways.for_case(case_id)
    if pathway is None:
        return {}
    return {form.key: form for spec in pathway.actions for form in forms_of(spec)}


def find(case_id: str, key: str) -> ActionForm | None:
    return all_forms(case_id).get(key)


def offered(case: CaseDetail, actor: Actor) -> list[ActionForm]:
    """The forms this person may use on this case now: none for auditors or closed cases."""
    if case.closed or actor.role in (Role.AUDITOR, Role.SYSTEM):
        return []
    if actor.role != Role.ADMIN and actor.team != case.team:
        return []
    offered = []
    for form in all_forms(case.case_id).values():
        if actor.role not in form.spec.roles or not form.spec.fits(case.stage):
            continue
        if form.key == "claim" and case.owner == actor.user_id:
            continue
        if form.supervisors_only and actor.role not in (Role.SUPERVISOR, Role.ADMIN):
            continue
        offered.append(form)
    return offered


def action_body(form: ActionForm, values: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Form values to the action's JSON body. A datetime-local value is clinic-local time."""
    body: dict[str, Any] = {}
    for spec in form.fields:
        value = values.get(spec.name, "").strip()
        if spec.kind == "checkbox":
            body[spec.name] = value in ("on", "true", "1", "yes")
            continue
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
