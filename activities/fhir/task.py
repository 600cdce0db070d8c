"""Each case mirrored as a FHIR Task in the EHR, so other systems see where it stands.

Followthrough owns the Task's identifier, intent, code, status, businessStatus, statusReason,
focus, for, owner and restriction; everything else (notes, inputs, outputs, EHR-side fields) is
left as the EHR has it. Writes are conditional on the version just read (If-Match): when someone
else changed the Task in between, the new version is read and the owned fields merged into it,
rather than overwriting the other edit blindly.

Outreach attempts will be written beside the Task as Communication resources through the same
client once patient messaging lands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.fhir.failures import VERSION_CONFLICT, unavailable
from activities.fhir.models import TaskMirror, TaskWritten

log = structlog.get_logger(__name__)

CASE_SYSTEM = "urn:followthrough:case"
USER_SYSTEM = "urn:followthrough:user"
TEAM_SYSTEM = "urn:followthrough:team"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
MAX_MERGES = 3


def owned_fields(mirror: TaskMirror) -> dict[str, Any]:
    owner = (
        {"identifier": {"system": USER_SYSTEM, "value": mirror.owner}, "display": mirror.owner}
        if mirror.owner
        else {"identifier": {"system": TEAM_SYSTEM, "value": mirror.team}, "display": mirror.team}
    )
    fields: dict[str, Any] = {
        "identifier": [{"system": CASE_SYSTEM, "value": mirror.case_id}],
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODES, "code": "fulfill"}]},
        "status": mirror.status,
        "businessStatus": {"text": mirror.business_status},
        "focus": {"reference": mirror.order},
        "for": {"reference": mirror.patient},
        "owner": owner,
        "lastModified": datetime.now(UTC).isoformat(),
    }
    if mirror.status_reason:
        fields["statusReason"] = {"text": mirror.status_reason}
    if mirror.due_at:
        fields["restriction"] = {"period": {"end": mirror.due_at.isoformat()}}
    return fields


def merge(current: dict[str, Any], mirror: TaskMirror) -> dict[str, Any]:
    """The EHR's Task with Followthrough's fields rewritten; a cleared reason or due date goes."""
    merged = {**current, **owned_fields(mirror)}
    if not mirror.status_reason:
        merged.pop("statusReason", None)
    if not mirror.due_at:
        merged.pop("restriction", None)
    merged.pop("meta", None)
    return merged


class TaskActivities:
    def __init__(self, fhir: FhirClient) -> None:
        self.fhir = fhir

    async def _current(self, case_id: str) -> dict[str, Any] | None:
        found = await self.fhir.search("Task", {"identifier": f"{CASE_SYSTEM}|{case_id}"})
        return found[0] if found else None

    @activity.defn(name="mirror_task")
    async def mirror_task(self, mirror: TaskMirror) -> TaskWritten:
        try:
            return await self._write(mirror)
        except ApplicationError as err:
            if not err.non_retryable:
                raise
            # Refused (a 4xx): an answer, not a failure, so the EHR's words stay out of logs.
            return TaskWritten(task="", refused=err.message)

    async def _write(self, mirror: TaskMirror) -> TaskWritten:
        current = await self._current(mirror.case_id)
        if current is None:
            # Conditional on the case's identifier: a create sent again after its answer was lost
            # (or racing an earlier attempt still in flight) finds the first Task, never a second.
            found, created = await self.fhir.create_unless_exists(
                {"resourceType": "Task", **owned_fields(mirror)},
                f"identifier={CASE_SYSTEM}|{mirror.case_id}",
            )
            if created and found:
                return TaskWritten(task=f"Task/{found['id']}", version_id=_version(found))
            current = found or await self._current(mirror.case_id)
            if current is None:
                raise unavailable("The EHR answered a Task create without the Task; retrying")
        for attempt in range(MAX_MERGES):
            try:
                written = await self.fhir.update(merge(current, mirror), if_match=_version(current))
                return TaskWritten(
                    task=f"Task/{written['id']}",
                    version_id=_version(written),
                    merged_concurrent_edit=attempt > 0,
                )
            except ApplicationError as err:
                if err.type != VERSION_CONFLICT:
                    raise
                log.info("task_edited_concurrently", case_id=mirror.case_id, attempt=attempt + 1)
                current = await self.fhir.read("Task", current["id"])
        # Still racing after several merges: let Temporal retry the whole write a little later.
        raise unavailable("The EHR's Task keeps changing; retrying")


def _version(resource: dict[str, Any]) -> str | None:
    return (resource.get("meta") or {}).get("versionId")
