"""Builders shared by the referral scenario tests."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager, suppress
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from workers.worker import build_worker
from workflows.care.calendar import BusinessCalendar
from workflows.care.models import Actor, CaseDetail, OrderSummary, Role
from workflows.referral.models import MarkScheduled, Priority, ReferralInput
from workflows.referral.workflow import ReferralWorkflow

TEAM = "cardiology"
NEW_YORK = ZoneInfo("America/New_York")  # the clinic's time zone in these tests
COORDINATOR = Actor(user_id="cora", role=Role.COORDINATOR, team=TEAM)
OTHER_COORDINATOR = Actor(user_id="omar", role=Role.COORDINATOR, team=TEAM)
SUPERVISOR = Actor(user_id="sam", role=Role.SUPERVISOR, team=TEAM)
OUTSIDER = Actor(user_id="olga", role=Role.COORDINATOR, team="imaging")
AUDITOR = Actor(user_id="audrey", role=Role.AUDITOR)


def referral_input(
    priority: Priority = Priority.ROUTINE,
    holidays: list[date] | None = None,
    case_id: str | None = None,
) -> ReferralInput:
    case_id = case_id or f"referral-{uuid.uuid4().hex[:10]}"
    return ReferralInput(
        case_id=case_id,
        order=OrderSummary(
            resource=f"ServiceRequest/{case_id}", patient="Patient/p1", service="Cardiology consult"
        ),
        priority=priority,
        team=TEAM,
        location="Location/main-clinic",
        calendar=BusinessCalendar(timezone="America/New_York", holidays=holidays or []),
    )


def linked_referral(order: str, patient: str, service: str = "Cardiology consult") -> ReferralInput:
    """A referral for an order and patient of the EHR, its claims verified there."""
    return referral_input().model_copy(
        update={
            "ehr": True,
            "order": OrderSummary(resource=order, patient=patient, service=service),
        }
    )


def booked(visit: dict) -> MarkScheduled:
    """The coordinator's claim that `visit`, an Appointment of the EHR, is booked."""
    return MarkScheduled(
        actor=COORDINATOR,
        appointment=f"Appointment/{visit['id']}",
        appointment_at=datetime.fromisoformat(visit["start"]),
    )


_opened: dict[str, list[WorkflowHandle]] = {}


@asynccontextmanager
async def running(client: Client, engine, task_queue: str, **options):
    """A worker for one test. Its cases first finish writing their ledger (an action's entries
    follow its reply), then those left open are terminated: their timers, or a workflow task cut
    off by the worker's shutdown, would otherwise hold back the time-skipping server for the
    tests that follow. `options` go to `build_worker` (which queues, the EHR's client)."""
    try:
        async with build_worker(client, engine, task_queue=task_queue, **options):
            try:
                yield
            finally:  # also when the test failed: the tests after it share the server
                for handle in _opened.get(task_queue, []):
                    with suppress(RPCError, AssertionError):
                        await ledger_written(handle)
    finally:
        for handle in _opened.pop(task_queue, []):
            with suppress(RPCError):
                await handle.terminate("test finished")


async def ledger_written(handle: WorkflowHandle) -> CaseDetail:
    """An action answers before its ledger entries are stored, and a reminder or escalation is
    on the case before its notice is delivered: wait until both are done."""
    for _ in range(250):
        detail = await handle.query(ReferralWorkflow.detail)
        if detail.ledger_pending == 0 and detail.notices_pending == 0:
            return detail
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"{detail.ledger_pending} ledger entries unwritten, {detail.notices_pending} notices "
        "undelivered"
    )


async def open_referral(
    client: Client, task_queue: str, order: ReferralInput | None = None
) -> WorkflowHandle:
    order = order or referral_input()
    handle = await client.start_workflow(
        ReferralWorkflow.run, order, id=order.case_id, task_queue=task_queue
    )
    _opened.setdefault(task_queue, []).append(handle)
    return handle


async def act(handle: WorkflowHandle, update, action) -> CaseDetail:
    """A care-team action as the API takes it: the update answers with an acknowledgement, and
    the case is then read by query."""
    await handle.execute_update(update, action)
    return await handle.query(ReferralWorkflow.detail)


def weekdays_after(start: date, count: int, holidays: tuple[date, ...] = ()) -> date:
    """The `count`-th Monday-to-Friday day after `start`, holidays skipped: counted by hand, so a
    test's expected deadline does not come from the calendar it checks."""
    day = start
    while count:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            count -= 1
    return day


def close_of_business(opened: datetime, days: int, holidays: tuple[date, ...] = ()) -> datetime:
    """17:00 in New York, `days` weekdays after the local day `opened` falls on."""
    local = opened.astimezone(NEW_YORK).date()
    return datetime.combine(weekdays_after(local, days, holidays), time(17), NEW_YORK)
