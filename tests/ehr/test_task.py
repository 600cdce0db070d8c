"""Task write-back against the real sandbox, including an edit made in the EHR at the same time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.exceptions import ApplicationError

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


class LateCreate(httpx.AsyncBaseTransport):
    """The first Task create times out for the client; the EHR stores it anyway, before the
    retry (its answer was lost) or after it (the request arrived late)."""

    def __init__(self, arrives: str) -> None:
        self.arrives = arrives
        self.real = httpx.AsyncHTTPTransport()
        self.late: asyncio.Task | None = None
        self.creates: list[int] = []
        self.retried = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/Task"):
            if not self.creates and self.late is None:
                await request.aread()
                if self.arrives == "before the retry":
                    await self._deliver(request)
                else:
                    self.late = asyncio.get_running_loop().create_task(self._deliver(request))
                raise httpx.ReadTimeout("no answer in time", request=request)
        return await self.real.handle_async_request(request)

    async def _deliver(self, request: httpx.Request) -> None:
        if self.arrives == "after the retry":
            await self.retried.wait()
        response = await self.real.handle_async_request(request)
        self.creates.append(response.status_code)
        await response.aclose()


@pytest.mark.parametrize("arrives", ["before the retry", "after the retry"])
async def test_a_create_that_timed_out_leaves_one_task(ehr: Ehr, ehr_url: str, arrives: str):
    transport = LateCreate(arrives)
    client = FhirClient(ehr_url, timeout=5, transport=transport)
    tasks = TaskActivities(client)
    case = mirror(ehr)

    with pytest.raises(ApplicationError) as timed_out:
        await tasks.mirror_task(case)
    assert not timed_out.value.non_retryable  # Temporal retries the activity
    retried = await tasks.mirror_task(case)
    transport.retried.set()
    if transport.late:
        await transport.late
    await client.aclose()

    found = ehr.read(f"Task?identifier=urn:followthrough:case|{case.case_id}")
    assert [f"Task/{e['resource']['id']}" for e in found.get("entry", [])] == [retried.task]
    # The late create matched the retry's Task (200) instead of storing a second one (201).
    assert transport.creates == ([201] if arrives == "before the retry" else [200])


class LaggingSearch(FhirClient):
    """An EHR whose search index has not caught up with a Task written moments ago."""

    async def search(self, resource_type, params):
        return [] if resource_type == "Task" else await super().search(resource_type, params)


async def test_a_task_the_search_misses_is_updated_not_created_again(ehr: Ehr, ehr_url: str):
    case = mirror(ehr)
    plain = FhirClient(ehr_url, timeout=5)
    first = await TaskActivities(plain).mirror_task(case)
    await plain.aclose()

    lagging = LaggingSearch(ehr_url, timeout=5)
    moved = case.model_copy(update={"status": "accepted", "business_status": "Awaiting scheduling"})
    written = await TaskActivities(lagging).mirror_task(moved)
    again, created = await lagging.create_unless_exists(
        {"resourceType": "Task", "status": "draft", "intent": "order"},
        f"identifier=urn:followthrough:case|{case.case_id}",
    )
    await lagging.aclose()

    assert written.task == first.task and not created and f"Task/{again['id']}" == first.task
    found = ehr.read(f"Task?identifier=urn:followthrough:case|{case.case_id}")
    assert [e["resource"]["status"] for e in found["entry"]] == ["accepted"]
