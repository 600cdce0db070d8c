"""What a pathway declares about itself, in one place the rest of Followthrough reads.

The worker registers its workflow, the API dispatches its actions and opens its cases from FHIR,
the web UI renders its forms and stage labels, detection opens its cases, the Task mirror reads
its stages. A pathway's package (`workflows/<name>/pathway.py`) builds one `Pathway`; the registry
(`workflows/pathways.py`) lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey

from workflows.care import search
from workflows.care.actions import Action, AddNote, Assign, Cancel
from workflows.care.models import Role, TaskState

CARE_TEAM = frozenset({Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN})
SUPERVISORS = frozenset({Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True)
class StageInfo:
    label: str  # how people read it: "Awaiting scheduling"
    task: TaskState  # how the EHR reads it: FHIR Task status and businessStatus
    closed: bool = False


def stages_of(
    labels: Mapping[str, str], task_states: Mapping[str, TaskState], closed: Iterable[str]
) -> dict[str, StageInfo]:
    """A pathway's stages, from its labels, its Task readings and its closed stages."""
    closed = set(closed)
    return {
        str(stage): StageInfo(label, task_states[stage], stage in closed)
        for stage, label in labels.items()
    }


@dataclass(frozen=True)
class ActionSpec:
    """A care-team action: `POST /api/v1/cases/{id}/actions/{name}` calls the workflow update
    `update` with `model` (its fields are the request body, and the web UI's form)."""

    name: str  # in the URL: mark-scheduled
    update: str  # the workflow update: mark_scheduled
    model: type[Action]
    title: str  # the form's heading, and the button when `button` is empty
    stages: frozenset[str] | None = None  # where it fits; None: any open stage
    roles: frozenset[Role] = CARE_TEAM
    button: str = ""
    danger: bool = False  # closes or undoes something: drawn apart in the UI

    def fits(self, stage: str) -> bool:
        return self.stages is None or stage in self.stages


def claim_or_assign() -> ActionSpec:
    """The care kit's actions every pathway offers: claim or assign (`Case.assign`), a note,
    cancelling the case (its title names what is cancelled)."""
    return ActionSpec("assign", "assign", Assign, "Claim or assign")


def add_note() -> ActionSpec:
    return ActionSpec("add-note", "add_note", AddNote, "Add a note", button="Add note")


def cancel(title: str) -> ActionSpec:
    return ActionSpec("cancel", "cancel", Cancel, title, button="Cancel case", danger=True)


class InvalidResource(Exception):
    """The FHIR resource cannot open a case; `errors` says why, without echoing its content
    (pydantic-style items: loc, msg, type)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def problem(loc: str, msg: str) -> dict[str, Any]:
    return {"loc": loc.split("."), "msg": msg, "type": "value_error"}


@dataclass(frozen=True)
class Linked:
    """What the intake may know beyond the resource itself: the settings, and resources the
    resource references that the caller read from the EHR (e.g. the order's Coverage)."""

    settings: Any
    resources: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # by "Type/id"


# A FHIR resource (JSON) to the workflow's input; None when this resource opens no case of the
# pathway (e.g. an order that needs no authorization). Raises InvalidResource.
Intake = Callable[[dict[str, Any], Linked], BaseModel | None]


@dataclass(frozen=True)
class Pathway:
    case_type: str  # CaseType search attribute, and the ledger's case type
    id_prefix: str  # case ids are "<prefix>-<FHIR id of the resource that opened it>"
    title: str  # "Referral"
    description: str
    workflow: type  # the @workflow.defn class
    stages: Mapping[str, StageInfo]
    actions: tuple[ActionSpec, ...]
    opens_from: str  # the FHIR resource type that opens it
    intake: Intake
    # Deadlines, as people read them (stage -> rule): shown in the docs and the UI.
    deadlines: Mapping[str, str] = field(default_factory=dict)
    search_attributes: tuple[SearchAttributeKey, ...] = tuple(search.ALL)
    # What the workflow must offer, by name: every pathway's case answers these.
    open_update: str = "open_case"
    detail_query: str = "detail"
    ehr_signal: str | None = "ehr_changed"  # EHR events about its order; None: not listening

    def case_id(self, resource_id: str) -> str:
        return f"{self.id_prefix}-{resource_id}"

    def action(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)

    @property
    def closed_stages(self) -> frozenset[str]:
        return frozenset(name for name, stage in self.stages.items() if stage.closed)
