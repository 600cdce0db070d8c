"""From EHR resources to cases: a new order opens its case; a change to a known order, or an
appointment or report for it, is signalled to that case. Used by the detection workflow (on a
Temporal Schedule) and by the FHIR notification webhook, so both behave the same.

Opening is idempotent: the case id comes from the order's id, and an order whose case is open is
signalled, never opened twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.fhir.client import FhirClient
from activities.fhir.failures import NOT_FOUND
from activities.fhir.models import EhrEvent
from workers.settings import Settings
from workflows import pathways
from workflows.care.actions import OpenCase
from workflows.care.models import SYSTEM, ActionAck
from workflows.care.pathway import InvalidResource, Linked, Pathway
from workflows.care.queues import workflow_queue

log = structlog.get_logger(__name__)

# Where each resource type names the order it belongs to.
ORDER_LINKS = {
    "Appointment": lambda r: r.get("basedOn"),
    "DiagnosticReport": lambda r: r.get("basedOn"),
    "DocumentReference": lambda r: (r.get("context") or {}).get("related"),
}
WATCHED = ["ServiceRequest", *ORDER_LINKS]
PAGE_SIZE = 100  # resources per search page


class Taken(BaseModel):
    resource: str
    outcome: str  # opened | signalled | ignored | invalid
    case_ids: list[str] = Field(default_factory=list)
    problem: str | None = None


class ChangeSearch(BaseModel):
    since: datetime
    # Versions already taken at exactly `since` ("Type/id/versionId"): the search includes its
    # boundary so nothing written in that same instant is missed, and these are not taken twice.
    taken_at_since: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)  # ServiceRequest category codes; [] any


class Detected(BaseModel):
    until: datetime  # the newest lastUpdated seen: the next search starts there
    taken_at_until: list[str] = Field(default_factory=list)
    opened: int = 0
    signalled: int = 0
    invalid: int = 0


@dataclass
class Opened:
    case_id: str
    created: bool  # false: the case was already open (or has closed), answered as it is
    closed: bool = False  # the case for this resource has closed: answered, never reopened


async def open_case(client: Client, pathway: Pathway, case: BaseModel, task_queue: str) -> Opened:
    """Start the pathway's case for `case` (its input), or find the one already open: the case id
    comes from the resource, so the same resource never opens two cases."""
    case_id = case.case_id  # every pathway's input names its case
    start = WithStartWorkflowOperation(
        pathway.workflow.run,
        case,
        id=case_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    try:
        ack = await client.execute_update_with_start_workflow(
            pathway.open_update,
            OpenCase(actor=SYSTEM),
            start_workflow_operation=start,
            result_type=ActionAck,
        )
    except WorkflowAlreadyStartedError:
        return Opened(case_id, created=False, closed=True)
    return Opened(case_id, created=ack.created)


def intake(resource: dict[str, Any], linked: Linked) -> list[tuple[Pathway, BaseModel]]:
    """Every case the resource opens, each pathway's input; InvalidResource when the resource
    cannot open a case of a pathway it is for."""
    opening = []
    for pathway in pathways.opened_by(resource.get("resourceType", "")):
        case = pathway.intake(resource, linked)
        if case is not None:
            opening.append((pathway, case))
    return opening


async def linked_resources(fhir: FhirClient, resource: dict[str, Any]) -> dict[str, dict]:
    """What an order's intake may need beyond the order: the Coverage it names (as its insurance,
    or in CRD's coverage information). A Coverage the EHR lacks is left out (the case checks
    coverage itself)."""
    found = {}
    named = [ref.get("reference") or "" for ref in resource.get("insurance") or []]
    for extension in resource.get("extension") or []:  # Da Vinci CRD's coverage information
        named += [
            (part.get("valueReference") or {}).get("reference") or ""
            for part in extension.get("extension") or []
            if part.get("url") == "coverage"
        ]
    for name in dict.fromkeys(named):
        if name.startswith("Coverage/"):
            try:
                found[name] = await fhir.read(*name.split("/", 1))
            except ApplicationError as err:
                if err.type != NOT_FOUND:
                    raise
    return found


class OrderIntake:
    def __init__(
        self, fhir: FhirClient, temporal: Client, settings: Settings, task_queue: str | None = None
    ) -> None:
        self.fhir = fhir
        self.temporal = temporal
        self.settings = settings
        self.task_queue = task_queue or settings.temporal_task_queue

    async def take(self, resource: dict[str, Any]) -> Taken:
        kind, rid = resource["resourceType"], resource["id"]
        name = f"{kind}/{rid}"
        event = EhrEvent(resource=name, status=resource.get("status"))
        if kind == "ServiceRequest":
            if resource.get("status") == "active":
                return await self._open(resource)
            return await self._signal(name, _cases_of_order(rid), event)
        if kind in ORDER_LINKS:
            orders = [
                ref["reference"].split("/", 1)[1]
                for ref in ORDER_LINKS[kind](resource) or []
                if (ref.get("reference") or "").startswith("ServiceRequest/")
            ]
            return await self._signal(
                name, [case for order in orders for case in _cases_of_order(order)], event
            )
        return Taken(resource=name, outcome="ignored")

    async def _open(self, resource: dict[str, Any]) -> Taken:
        name = f"ServiceRequest/{resource['id']}"
        try:
            linked = Linked(self.settings, await linked_resources(self.fhir, resource))
            opening = intake(resource, linked)
        except InvalidResource as err:
            return Taken(resource=name, outcome="invalid", problem=str(err)[:300])
        if not opening:
            return Taken(resource=name, outcome="ignored")
        patient = opening[0][1].order.patient
        try:
            await self.fhir.read(*patient.split("/", 1))
        except ApplicationError as err:
            if err.type != NOT_FOUND:
                raise
            problem = f"{patient} named by {name} does not exist in the EHR"
            return Taken(resource=name, outcome="invalid", problem=problem)
        opened, signalled = [], []
        for pathway, case in opening:
            case = case.model_copy(update={"ehr": True})
            result = await open_case(self.temporal, pathway, case, self.task_queue)
            if result.created:
                log.info("case_opened_from_ehr", case_id=result.case_id)
                opened.append(result.case_id)
            elif not result.closed:
                signalled.append(result.case_id)
        if signalled:
            await self._signal(name, signalled, EhrEvent(resource=name, status="active"))
        if opened:
            return Taken(resource=name, outcome="opened", case_ids=opened + signalled)
        if signalled:
            return Taken(resource=name, outcome="signalled", case_ids=signalled)
        return Taken(resource=name, outcome="ignored", case_ids=[c.case_id for _, c in opening])

    async def _signal(self, name: str, case_ids: list[str], event: EhrEvent) -> Taken:
        reached = []
        for case_id in case_ids:
            pathway = pathways.for_case(case_id)
            if pathway is None or pathway.ehr_signal is None:
                continue
            try:
                await self.temporal.get_workflow_handle(case_id).signal(pathway.ehr_signal, event)
                reached.append(case_id)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        return Taken(resource=name, outcome="signalled" if reached else "ignored", case_ids=reached)


def _cases_of_order(order_id: str) -> list[str]:
    """The cases an order may have opened, one per pathway that opens from orders."""
    return [pathway.case_id(order_id) for pathway in pathways.opened_by("ServiceRequest")]


class IntakeActivities:
    def __init__(self, fhir: FhirClient, settings: Settings, page_size: int = PAGE_SIZE) -> None:
        self.fhir = fhir
        self.settings = settings
        self.page_size = page_size

    @activity.defn(name="detect_ehr_changes")
    async def detect_changes(self, search: ChangeSearch) -> Detected:
        """Everything watched that changed since the watermark, taken in order of change.

        The searches follow every page. The watermark moves with each resource taken and goes
        out with every heartbeat, so an attempt that stops part-way through a long backlog (a
        timeout, a restart) is retried from where it got to rather than from the start."""
        # Cases open on the task queue detection runs on: the deployment that detected them.
        intake = OrderIntake(
            self.fhir, activity.client(), self.settings, workflow_queue(activity.info().task_queue)
        )
        progress = _resumed(search)
        since = progress.until.isoformat()
        found: list[dict[str, Any]] = []
        for kind in WATCHED:
            params = {"_lastUpdated": f"ge{since}", "_count": str(self.page_size)}
            if kind == "ServiceRequest" and search.categories:
                params["category"] = ",".join(search.categories)
            async for page in self.fhir.pages(kind, params):
                found += page
                activity.heartbeat(progress)  # each page is progress, not a stuck activity
        found = [r for r in found if _version(r) not in progress.taken_at_until]
        found.sort(key=_last_updated)
        for resource in found:
            taken = await intake.take(resource)
            if taken.outcome == "opened":
                progress.opened += 1
            elif taken.outcome == "signalled":
                progress.signalled += 1
            elif taken.outcome == "invalid":
                progress.invalid += 1
                log.info("ehr_order_skipped", resource=taken.resource)  # ids only, no content
            _advance(progress, resource)
            activity.heartbeat(progress)
        return progress


def _resumed(search: ChangeSearch) -> Detected:
    """Where an earlier attempt of this run got to (its last heartbeat), else the watermark."""
    details = activity.info().heartbeat_details
    if details:
        return Detected.model_validate(details[0])
    return Detected(until=search.since, taken_at_until=list(search.taken_at_since))


def _advance(progress: Detected, resource: dict[str, Any]) -> None:
    """Move the watermark past a resource just taken (they are taken oldest first)."""
    changed = _last_updated(resource)
    if changed > progress.until:
        progress.until, progress.taken_at_until = changed, []
    progress.taken_at_until.append(_version(resource))


def _version(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}/{resource['meta'].get('versionId')}"


def _last_updated(resource: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(resource["meta"]["lastUpdated"])
