"""The API's service layer: the one path from HTTP (and the web UI) to case workflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.fhir.intake import open_case
from api.errors import problems
from workflows import pathways
from workflows.care import errors, search
from workflows.care.models import ActionAck, Actor, CaseDetail, Role
from workflows.care.pathway import Pathway
from workflows.care.trail import LedgerBroken

STATUS_FOR = {
    errors.ACTION_NOT_ALLOWED: status.HTTP_409_CONFLICT,
    errors.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    errors.INVALID_ACTION: status.HTTP_422_UNPROCESSABLE_CONTENT,
}
QUERY_WITHIN = timedelta(seconds=5)
# A query nobody answered in time: no worker polls, or the case's workflow task keeps failing.
UNANSWERED = {
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
}


async def open_cases(
    client: Client, opening: list[tuple[Pathway, BaseModel]], task_queue: str
) -> list[CaseDetail]:
    """Open each case (or find the one already open for the resource) and read it; `created` is
    true only for the cases this request opened."""
    found = []
    for pathway, order in opening:
        try:
            opened = await open_case(client, pathway, order, task_queue)
        except RPCError as err:
            if err.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            # The case is there, but its workflow task keeps failing: it takes nothing now.
            handle = client.get_workflow_handle(order.case_id)
            raise await _unanswered(client, handle) from None
        case = await query_case(client, opened.case_id)
        case.created = opened.created
        found.append(case)
    return found


async def query_case(client: Client, case_id: str) -> CaseDetail:
    handle = client.get_workflow_handle(case_id)
    try:
        return await handle.query(
            _pathway(case_id).detail_query, result_type=CaseDetail, rpc_timeout=QUERY_WITHIN
        )
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case {case_id}") from None
        if err.status in UNANSWERED:
            raise await _unanswered(client, handle) from None
        raise


async def _unanswered(client: Client, handle: WorkflowHandle) -> HTTPException:
    """Why a case did not answer: held by a failing workflow task (and why, when it is the care
    kit's own reason), or no worker answering for it right now. Temporal keeps it either way."""
    held = await _held_because(client, handle)
    if held:
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"The case is held until this is fixed: {held}. Nothing is lost; it goes "
            "on by itself once the cause is fixed",
        )
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The case cannot be read right now (no worker is answering); "
        "nothing is lost, try again shortly",
    )


async def _held_because(client: Client, handle: WorkflowHandle) -> str | None:
    """Why the case's workflow task keeps failing, if it does. Only the care kit's own reason (a
    ledger refusal: case id and entry number) is told; any other failure's words could carry
    what they should not, and are left to the worker's log."""
    described = await handle.describe()
    if described.raw_description.pending_workflow_task.attempt < 2:
        return None
    failure = None
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
    if failure is None or failure.application_failure_info.type != LedgerBroken.__name__:
        return "its workflow task keeps failing"
    # The failure's words travel encrypted like every payload: decoded with the client's codec.
    decoded = await client.data_converter.decode_failure(failure)
    return str(decoded)[:500]


SEE_EVERY_CASE = (Role.AUDITOR, Role.ADMIN)


def outside_team(actor: Actor, case_id: str) -> HTTPException:
    """What a caller bound to one team hears of another team's case, and of a case nobody has:
    the same status and words, so the answer never tells whether a case exists elsewhere."""
    return HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"You can see team {actor.team}'s cases only; {case_id} is not one of them",
    )


def authorize_read(actor: Actor, case: CaseDetail) -> None:
    if actor.role not in SEE_EVERY_CASE and actor.team != case.team:
        raise outside_team(actor, case.case_id)


async def read_case(client: Client, case_id: str, actor: Actor) -> CaseDetail:
    try:
        case = await query_case(client, case_id)
    except HTTPException as err:
        if err.status_code == status.HTTP_404_NOT_FOUND and actor.role not in SEE_EVERY_CASE:
            raise outside_team(actor, case_id) from None
        raise
    authorize_read(actor, case)
    return case


async def act(
    client: Client,
    case_id: str,
    action: str,
    body: dict[str, Any],
    actor: Actor,
    *,
    update_id: str | None = None,
) -> CaseDetail:
    """Send a care-team action; answers only once the workflow accepted or rejected it. With
    `update_id`, the case takes the action once however often it is sent (Temporal keeps an
    update's id for the run), also when an answer was lost with the process that waited for it."""
    pathway = _pathway(case_id)
    spec = pathway.action(action)
    if spec is None:
        names = ", ".join(a.name for a in pathway.actions)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{pathway.title} cases have no action {action!r}; actions: {names}",
        )
    if actor.role == Role.AUDITOR:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Auditors read cases; they do not act")
    if actor.role not in spec.roles:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"The {actor.role.value} role may not {spec.title.lower()}"
        )
    update = spec.update
    try:
        payload = spec.model.model_validate({**body, "actor": actor})
    except ValidationError as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            problems(err),
        ) from None
    handle = client.get_workflow_handle(case_id)
    try:
        # The update answers with a small acknowledgement (all its history keeps of it); the
        # case itself is read by query, which leaves nothing in the history.
        await handle.execute_update(update, payload, id=update_id, result_type=ActionAck)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and errors.OTHER_TEAM in cause.details:
            raise outside_team(actor, case_id) from None  # as for a case that does not exist
        if isinstance(cause, ApplicationError) and cause.type in STATUS_FOR:
            raise HTTPException(STATUS_FOR[cause.type], cause.message) from None
        raise
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise await _not_running(client, case_id, actor) from None
        if err.status == RPCStatusCode.FAILED_PRECONDITION:  # its workflow task keeps failing
            raise await _unanswered(client, handle) from None
        raise
    return await query_case(client, case_id)


def _pathway(case_id: str) -> Pathway:
    pathway = pathways.for_case(case_id)
    if pathway is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case {case_id}")
    return pathway


async def _not_running(client: Client, case_id: str, actor: Actor) -> HTTPException:
    """Why an action found no running case: closed (409) or unknown (404). Told from the case's
    described status, not from the server's wording, which differs between Temporal servers. A
    caller bound to one team hears the same of another team's case as of a case nobody has."""
    scoped = actor.role not in SEE_EVERY_CASE
    try:
        described = await client.get_workflow_handle(case_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            if scoped:
                return outside_team(actor, case_id)
            return HTTPException(status.HTTP_404_NOT_FOUND, f"No case {case_id}")
        raise
    if scoped and described.typed_search_attributes.get(search.OWNER_TEAM) != actor.team:
        return outside_team(actor, case_id)
    if described.status != WorkflowExecutionStatus.RUNNING:
        return HTTPException(
            status.HTTP_409_CONFLICT, "The case is closed; no more actions are accepted"
        )
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The case could not take the action right now; nothing was recorded, try again",
    )


class HistoryEvent(BaseModel):
    event_id: int
    at: datetime
    type: str
    detail: str | None = None


async def history(client: Client, case_id: str) -> list[HistoryEvent]:
    """The raw Temporal history as readable events: names and ids only, never payloads."""
    events = []
    async for event in client.get_workflow_handle(case_id).fetch_history_events():
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        events.append(
            HistoryEvent(
                event_id=event.event_id,
                at=event.event_time.ToDatetime(tzinfo=UTC),
                type=name.lower(),
                detail=_detail(event),
            )
        )
    return events


def _detail(event: Any) -> str | None:
    attrs = event.WhichOneof("attributes")
    if not attrs:
        return None
    body = getattr(event, attrs)
    if attrs == "workflow_execution_update_accepted_event_attributes":
        return f"update {body.accepted_request.input.name}"
    if attrs == "activity_task_scheduled_event_attributes":
        return f"activity {body.activity_type.name}"
    if attrs == "timer_started_event_attributes":
        return f"timer {body.start_to_fire_timeout.ToTimedelta()}"
    if attrs == "workflow_execution_signaled_event_attributes":
        return f"signal {body.signal_name}"
    if attrs == "upsert_workflow_search_attributes_event_attributes":
        return "search attributes " + ", ".join(sorted(body.search_attributes.indexed_fields))
    if attrs == "workflow_execution_started_event_attributes":
        return f"workflow {body.workflow_type.name}"
    return None
