"""Detection on the real worker: new orders open cases once, changes are signalled, an order
revoked in the EHR cancels its case, and the Schedule hands each run the last run's watermark."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.fhir.intake import Detected
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
        last = recent[-1].action.workflow_id
        result = await temporal.get_workflow_handle(last, result_type=Detected).result()
        assert result.opened == 1  # only the new order: the first was behind the watermark
    finally:
        await schedule.delete()
