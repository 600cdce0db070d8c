"""Task write-back against the real sandbox, including an edit made in the EHR at the same time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from activities.fhir.client import FhirClient
from activities.fhir.models import TaskMirror
from activities.fhir.task import TaskActivities

from .records import Ehr


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


def mirror(ehr: Ehr, **changes) -> TaskMirror:
    patient = ehr.patient()
    return TaskMirror(
        case_id=f"referral-{uuid.uuid4().hex[:10]}",
        order=ehr.order(patient),
        patient=patient,
        status="requested",
        business_status="Awaiting an owner",
        team="cardiology",
        due_at=datetime.now(UTC) + timedelta(days=2),
        **changes,
    )


async def test_the_case_is_mirrored_and_updated_in_place(ehr: Ehr, ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    tasks = TaskActivities(client)
    case = mirror(ehr)
    first = await tasks.mirror_task(case)
    task = ehr.read(first.task)
    assert task["focus"]["reference"] == case.order and task["for"]["reference"] == case.patient
    assert task["status"] == "requested" and task["businessStatus"]["text"] == "Awaiting an owner"
    assert task["owner"]["identifier"]["value"] == "cardiology"
    assert datetime.fromisoformat(task["restriction"]["period"]["end"]) == case.due_at

    moved = case.model_copy(
        update={"status": "accepted", "business_status": "Awaiting scheduling", "owner": "cora"}
    )
    second = await tasks.mirror_task(moved)
    await client.aclose()
    assert second.task == first.task and second.version_id != first.version_id
    task = ehr.read(second.task)
    assert (task["status"], task["owner"]["identifier"]["value"]) == ("accepted", "cora")
    assert len(ehr.read(f"{first.task}/_history")["entry"]) == 2


class RacingClient(FhirClient):
    """Someone in the EHR adds a note to the Task just before our first conditional write."""

    def __init__(self, base_url: str, ehr: Ehr) -> None:
        super().__init__(base_url, timeout=5)
        self.ehr = ehr
        self.raced = False
        self.statuses: list[int] = []
        self.http.event_hooks["response"].append(self._status)

    async def _status(self, response: httpx.Response) -> None:
        if response.request.method == "PUT":
            self.statuses.append(response.status_code)

    async def update(self, resource, *, if_match=None):
        if not self.raced:
            self.raced = True
            theirs = self.ehr.read(f"Task/{resource['id']}")
            theirs["note"] = [{"text": "Called the clinic, awaiting a slot"}]
            theirs["priority"] = "urgent"
            self.ehr.put(theirs)
        return await super().update(resource, if_match=if_match)


async def test_a_concurrent_edit_is_merged_not_overwritten(ehr: Ehr, ehr_url: str):
    case = mirror(ehr)
    plain = FhirClient(ehr_url, timeout=5)
    first = await TaskActivities(plain).mirror_task(case)
    await plain.aclose()

    racing = RacingClient(ehr_url, ehr)
    moved = case.model_copy(update={"status": "in-progress", "business_status": "Scheduled"})
    written = await TaskActivities(racing).mirror_task(moved)
    await racing.aclose()

    assert racing.statuses == [412, 200]  # the stale write was refused, the merge went through
    assert written.merged_concurrent_edit
    task = ehr.read(first.task)
    assert task["status"] == "in-progress" and task["businessStatus"]["text"] == "Scheduled"
    assert task["note"] == [{"text": "Called the clinic, awaiting a slot"}]
    assert task["priority"] == "urgent"
    assert len(ehr.read(f"{first.task}/_history")["entry"]) == 3
