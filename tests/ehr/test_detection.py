"""Detection on the real worker: new orders open cases once, changes are signalled, an order
revoked in the EHR cancels its case, and the Schedule hands each run the last run's watermark."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.fhir.client import FhirClient
from activities.fhir.intake import ChangeSearch, Detected, IntakeActivities, OrderIntake
from workers.client import connect
from workers.schedules import detection_schedule, keep_schedule
from workflows.detection.workflow import Detection, EhrDetectionWorkflow
from workflows.referral.workflow import ReferralWorkflow

from .conftest import EhrStack
from .records import Ehr
from .test_pathway import category


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
async def temporal(ehr_stack: EhrStack) -> Client:
    return await connect(ehr_stack.temporal_address)


async def detect(temporal: Client, stack: EhrStack, code: str, since: Detected) -> Detected:
    return await temporal.execute_workflow(
        EhrDetectionWorkflow.run,
        Detection(categories=[code], since=since),
        id=f"detect-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )


async def stage_of(temporal: Client, case_id: str, want: str, within: float = 10) -> str | None:
    """The case's stage once it is `want` (or whatever it is when time runs out)."""
    handle, stage = temporal.get_workflow_handle(case_id), None
    for _ in range(int(within / 0.2)):
        try:
            stage = (await handle.query(ReferralWorkflow.detail)).stage
        except RPCError:  # not opened yet
            stage = None
        if stage == want:
            break
        await asyncio.sleep(0.2)
    return stage


async def test_new_updated_and_revoked_orders(temporal, ehr_stack, ehr: Ehr):
    code = uuid.uuid4().hex
    start = Detected(until=datetime.now(UTC) - timedelta(seconds=1))
    order = ehr.order(ehr.patient(), category=category(code))
    case_id = f"referral-{order.split('/')[1]}"

    first = await detect(temporal, ehr_stack, code, start)
    assert (first.opened, first.signalled) == (1, 0)
    assert await stage_of(temporal, case_id, "unassigned") == "unassigned"

    quiet = await detect(temporal, ehr_stack, code, first)
    assert (quiet.opened, quiet.signalled, quiet.until) == (0, 0, first.until)

    ehr.put({**ehr.read(order), "priority": "urgent"})
    updated = await detect(temporal, ehr_stack, code, quiet)
    assert (updated.opened, updated.signalled) == (0, 1)  # the open case is told, not duplicated

    ehr.put({**ehr.read(order), "status": "revoked"})
    revoked = await detect(temporal, ehr_stack, code, updated)
    assert revoked.signalled == 1
    assert await stage_of(temporal, case_id, "cancelled") == "cancelled"
    detail = await temporal.get_workflow_handle(case_id).query(ReferralWorkflow.detail)
    assert detail.timeline[-1].summary == "Order revoked in the EHR"


async def test_an_order_for_a_missing_patient_is_skipped(temporal, ehr_stack, ehr: Ehr):
    code = uuid.uuid4().hex
    start = Detected(until=datetime.now(UTC) - timedelta(seconds=1))
    ehr.order("Patient/not-in-this-ehr", category=category(code))
    result = await detect(temporal, ehr_stack, code, start)
    assert (result.opened, result.invalid) == (0, 1)


async def test_the_schedule_carries_the_watermark_between_runs(temporal, ehr_stack, ehr: Ehr):
    code = uuid.uuid4().hex
    first = ehr.order(ehr.patient(), category=category(code))
    settings = ehr_stack.settings.model_copy(
        update={"ehr_order_categories": [code], "ehr_detection_minutes": 60}
    )
    schedule_id = f"detect-{code[:8]}"
    await keep_schedule(temporal, schedule_id, detection_schedule(settings))
    schedule = temporal.get_schedule_handle(schedule_id)
    try:
        await schedule.trigger()
        assert await stage_of(temporal, f"referral-{first.split('/')[1]}", "unassigned")
        second = ehr.order(ehr.patient(), category=category(code))
        for _ in range(50):  # the first run must have finished before the next is triggered
            if (await schedule.describe()).info.running_actions == []:
                break
            await asyncio.sleep(0.2)
        await schedule.trigger()
        assert await stage_of(temporal, f"referral-{second.split('/')[1]}", "unassigned")
        for _ in range(50):
            recent = (await schedule.describe()).info.recent_actions
            if len(recent) == 2 and not (await schedule.describe()).info.running_actions:
                break
            await asyncio.sleep(0.2)
        # Two runs happened (triggered within one second, they share a workflow id, not a run).
        runs = [(a.action.workflow_id, a.action.first_execution_run_id) for a in recent]
        assert len(set(runs)) == 2
        workflow_id, run_id = runs[-1]
        handle = temporal.get_workflow_handle(workflow_id, run_id=run_id, result_type=Detected)
        result = await handle.result()
        # Only the new order: the first was behind the watermark, so it is neither opened nor
        # signalled again (a run from the first lookback would find it and signal its case).
        assert (result.opened, result.signalled, result.invalid) == (1, 0, 0)
    finally:
        await schedule.delete()


class CountingPages(FhirClient):
    """The sandbox, counting the search pages each resource type took."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, timeout=10)
        self.pages_of: dict[str, int] = {}

    async def pages(self, resource_type, params):
        async for page in super().pages(resource_type, params):
            self.pages_of[resource_type] = self.pages_of.get(resource_type, 0) + 1
            yield page


def attempt(temporal: Client, stack: EhrStack, beats: list, heartbeat=None) -> ActivityEnvironment:
    """An activity attempt on the stack's task queue; `heartbeat` is a previous attempt's last."""
    env = ActivityEnvironment(client=temporal)
    env.info = dataclasses.replace(
        env.info,
        task_queue=stack.task_queue,
        attempt=2 if heartbeat else 1,
        heartbeat_details=[heartbeat.model_dump(mode="json")] if heartbeat else [],
    )
    env.on_heartbeat = lambda *details: beats.append(details[0].model_copy(deep=True))
    return env


async def test_detection_takes_every_page_of_a_long_backlog(temporal, ehr_stack, ehr: Ehr):
    code = uuid.uuid4().hex
    since = datetime.now(UTC) - timedelta(seconds=1)
    # 2 orders a page: 103 orders are 52 pages, past any fixed page limit of 50.
    for _ in range(101):
        ehr.order("Patient/not-in-this-ehr", category=category(code))
    valid = [ehr.order(ehr.patient(), category=category(code)) for _ in range(2)]
    fhir = CountingPages(ehr_stack.ehr_url)
    intake = IntakeActivities(fhir, ehr_stack.settings, page_size=2)
    beats: list[Detected] = []
    try:
        result = await attempt(temporal, ehr_stack, beats).run(
            intake.detect_changes, ChangeSearch(since=since, categories=[code])
        )
    finally:
        await fhir.aclose()

    assert (result.opened, result.signalled, result.invalid) == (2, 0, 101)
    assert fhir.pages_of["ServiceRequest"] == 52
    assert len(beats) >= 52 + 103  # one heartbeat per page and per resource taken
    for order in valid:
        assert await stage_of(temporal, f"referral-{order.split('/')[1]}", "unassigned")


async def test_a_retried_detection_resumes_from_its_last_heartbeat(
    temporal, ehr_stack, ehr: Ehr, monkeypatch
):
    code = uuid.uuid4().hex
    since = datetime.now(UTC) - timedelta(seconds=1)
    orders = [ehr.order(ehr.patient(), category=category(code)) for _ in range(4)]
    fhir = FhirClient(ehr_stack.ehr_url, timeout=10)
    intake = IntakeActivities(fhir, ehr_stack.settings, page_size=2)
    search = ChangeSearch(since=since, categories=[code])
    take, taken, stopping = OrderIntake.take, [], [True]

    async def counting_take(self, resource):
        if stopping[0] and len(taken) == 2:
            raise RuntimeError("the worker stopped")  # two orders in, the attempt dies
        taken.append(resource["id"])
        return await take(self, resource)

    monkeypatch.setattr(OrderIntake, "take", counting_take)
    beats: list[Detected] = []
    try:
        with pytest.raises(RuntimeError):
            await attempt(temporal, ehr_stack, beats).run(intake.detect_changes, search)
        stopping[0] = False
        retried = await attempt(temporal, ehr_stack, [], beats[-1]).run(
            intake.detect_changes, search
        )
    finally:
        await fhir.aclose()

    ids = [order.split("/")[1] for order in orders]
    assert taken == ids  # each order once, oldest first: the retry went on from the third
    assert (retried.opened, retried.signalled, retried.invalid) == (4, 0, 0)
    for order_id in ids:
        assert await stage_of(temporal, f"referral-{order_id}", "unassigned")
