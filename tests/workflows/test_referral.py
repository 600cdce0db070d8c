"""Referral scenarios on time-skipping Temporal: weeks of case time in about a second each."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.staff import StaffNoticeRecord
from tests.conftest import eventually
from workflows.care import errors, search
from workflows.care.models import EventKind
from workflows.referral.models import (
    AddNote,
    Assign,
    Cancel,
    Channel,
    MarkCompleted,
    MarkNoShow,
    MarkScheduled,
    OpenCase,
    OutreachOutcome,
    RecordDocuments,
    RecordOutreach,
)
from workflows.referral.workflow import ReferralWorkflow

from .referral_kit import (
    AUDITOR,
    COORDINATOR,
    NEW_YORK,
    OTHER_COORDINATOR,
    OUTSIDER,
    SUPERVISOR,
    act,
    close_of_business,
    ledger_written,
    open_referral,
    referral_input,
    running,
    weekdays_after,
)


def kinds(detail) -> list[EventKind]:
    return [event.kind for event in detail.timeline]


async def rejected(handle, update, action, error_type: str) -> ApplicationError:
    """The case's refusal of an action, of the kind named (errors.FORBIDDEN, ...): an action
    the workflow could not even decode fails too, but as another type."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(update, action)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == error_type, cause
    return cause


# The time-skipping server also records the workflow task that ran a rejected update's validator
# (newer servers drop it); anything else in the history is something the case did.
BOOKKEEPING = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}


async def recorded(handle) -> int:
    """How many events the case's history holds beyond workflow-task bookkeeping."""
    events = (await handle.fetch_history()).events
    return sum(event.event_type not in BOOKKEEPING for event in events)


async def test_scheduled_on_day_three_then_completed(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        claimed = await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        assert (claimed.stage, claimed.owner) == ("awaiting_scheduling", "cora")

        await time_skipping.sleep(timedelta(days=3))
        visit = (await time_skipping.get_current_time()) + timedelta(days=5)
        scheduled = await act(
            handle,
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit),
        )
        assert scheduled.stage == "scheduled"
        assert scheduled.task.status == "in-progress"

        await time_skipping.sleep(timedelta(days=6))
        after_visit = await handle.query(ReferralWorkflow.detail)
        assert after_visit.stage == "awaiting_result"
        assert after_visit.due_at is not None

        done = await act(
            handle,
            ReferralWorkflow.mark_completed,
            MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
        )
        assert done.stage == "completed" and done.closed
        assert done.task.status == "completed"
        outcome = await handle.result()
        assert outcome.stage == "completed"
        assert EventKind.ESCALATED not in kinds(done)
        assert done.references == {"appointment": "Appointment/a1", "report": "DiagnosticReport/r1"}


async def test_nobody_schedules_for_ten_business_days(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        claimed = await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        due = claimed.due_at
        opened = claimed.opened_at
        assert claimed.stalled is False
        # Ten business days after the order, at close of business in the clinic's time zone.
        assert due == close_of_business(opened, 10)

        await time_skipping.sleep(due - await time_skipping.get_current_time() - timedelta(hours=1))
        before = await handle.query(ReferralWorkflow.detail)
        assert EventKind.REMINDED in kinds(before)
        assert EventKind.ESCALATED not in kinds(before) and before.stalled is False

        await time_skipping.sleep(timedelta(hours=2))
        after = await handle.query(ReferralWorkflow.detail)
        assert kinds(after)[-2:] == [EventKind.REMINDED, EventKind.ESCALATED]
        assert after.stalled is True
        described = await handle.describe()
        assert described.typed_search_attributes.get(search.STALLED) is True

        def delivered():
            with Session(engine) as session:
                found = session.exec(select(StaffNoticeRecord)).all()
            return found if len(found) == 2 else None

        notices = await asyncio.to_thread(eventually, delivered, 5.0, 0.05)
        assert [(n.kind, n.role, n.user_id) for n in notices] == [
            ("reminded", "coordinator", "cora"),
            ("escalated", "supervisor", None),
        ]

        # Acting clears the stalled flag.
        visit = (await time_skipping.get_current_time()) + timedelta(days=2)
        scheduled = await act(
            handle,
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a2", appointment_at=visit),
        )
        assert scheduled.stalled is False


async def test_unowned_case_escalates(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        await time_skipping.sleep(timedelta(days=5))
        detail = await handle.query(ReferralWorkflow.detail)
        assert detail.stage == "unassigned"
        assert detail.stalled is True
        assert kinds(detail) == [EventKind.OPENED, EventKind.ESCALATED]


async def test_documents_received_in_any_open_stage(time_skipping, client, engine, task_queue):
    letters = ["DocumentReference/d1", "DocumentReference/d2"]
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        received = await act(
            handle,
            ReferralWorkflow.record_documents,
            RecordDocuments(actor=COORDINATOR, documents=letters),
        )
        assert received.stage == "unassigned"
        event = received.timeline[-1]
        assert event.kind == EventKind.DOCUMENTS_RECEIVED and event.actor == "cora"
        assert [e.reference for e in event.evidence] == letters
        assert received.references["documents"] == "DocumentReference/d1, DocumentReference/d2"

        with pytest.raises(ValueError):
            RecordDocuments(actor=COORDINATOR, documents=["Patient/p1"])
        await rejected(
            handle,
            ReferralWorkflow.record_documents,
            RecordDocuments(actor=OUTSIDER, documents=letters),
            errors.FORBIDDEN,
        )
        await handle.execute_update(
            ReferralWorkflow.cancel, Cancel(actor=COORDINATOR, reason="Order withdrawn")
        )
        closed = await rejected(
            handle,
            ReferralWorkflow.record_documents,
            RecordDocuments(actor=COORDINATOR, documents=letters),
            errors.ACTION_NOT_ALLOWED,
        )
        assert "no more actions" in closed.message


async def test_holiday_inside_the_window_moves_the_deadline(
    time_skipping, client, engine, task_queue
):
    async with running(client, engine, task_queue):
        plain = await open_referral(client, task_queue)
        opened = (await plain.query(ReferralWorkflow.detail)).opened_at
        # A holiday on the fourth weekday of the window pushes the deadline one weekday on.
        holiday = weekdays_after(opened.astimezone(NEW_YORK).date(), 4)
        with_holiday = await open_referral(client, task_queue, referral_input(holidays=[holiday]))

        due_plain = (await act(plain, ReferralWorkflow.assign, Assign(actor=COORDINATOR))).due_at
        due_holiday = (
            await act(with_holiday, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        ).due_at
        assert due_plain == close_of_business(opened, 10)
        assert due_holiday == close_of_business(opened, 11)
        assert due_holiday == close_of_business(opened, 10, holidays=(holiday,))


async def test_no_show_goes_back_to_scheduling(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        visit = (await time_skipping.get_current_time()) + timedelta(days=4)
        await handle.execute_update(
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a3", appointment_at=visit),
        )
        await time_skipping.sleep(timedelta(days=5))

        missed = await act(
            handle,
            ReferralWorkflow.mark_no_show,
            MarkNoShow(actor=COORDINATOR, note="did not arrive"),
        )
        assert missed.stage == "awaiting_scheduling"
        assert missed.counters["reschedules"] == 1
        assert "appointment" not in missed.references
        # A fresh scheduling window, counted from the missed visit.
        assert missed.due_at > visit + timedelta(days=10)

        again = (await time_skipping.get_current_time()) + timedelta(days=3)
        rescheduled = await act(
            handle,
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a4", appointment_at=again),
        )
        assert rescheduled.stage == "scheduled"
        assert kinds(rescheduled).count(EventKind.NO_SHOW) == 1


async def test_actions_that_do_not_fit_are_rejected_without_trace(
    time_skipping, client, engine, task_queue
):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        before = await handle.query(ReferralWorkflow.detail)

        wrong_stage = await rejected(
            handle,
            ReferralWorkflow.mark_completed,
            MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r9"),
            errors.ACTION_NOT_ALLOWED,
        )
        assert "unassigned" in wrong_stage.message
        await rejected(handle, ReferralWorkflow.assign, Assign(actor=OUTSIDER), errors.FORBIDDEN)
        await rejected(
            handle,
            ReferralWorkflow.add_note,
            AddNote(actor=AUDITOR, text="looks fine"),
            errors.FORBIDDEN,
        )
        await rejected(
            handle,
            ReferralWorkflow.assign,
            Assign(actor=COORDINATOR, owner="omar"),
            errors.FORBIDDEN,
        )

        after = await handle.query(ReferralWorkflow.detail)
        assert after.timeline == before.timeline
        history = await handle.fetch_history()
        assert not [
            e
            for e in history.events
            if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]

        # A supervisor may hand the case to someone else.
        reassigned = await act(
            handle, ReferralWorkflow.assign, Assign(actor=SUPERVISOR, owner="omar")
        )
        assert reassigned.owner == OTHER_COORDINATOR.user_id
        assert reassigned.timeline[-2].actor == "sam"


async def test_cancel_closes_the_case(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        before = await ledger_written(handle)
        events = await recorded(handle)
        # Another team's coordinator and an auditor may not cancel it; nothing is recorded.
        why = [(OUTSIDER, "belongs to team cardiology"), (AUDITOR, "auditor role cannot act")]
        for stranger, reason in why:
            refused = await rejected(
                handle,
                ReferralWorkflow.cancel,
                Cancel(actor=stranger, reason="Patient moved out of area"),
                errors.FORBIDDEN,
            )
            assert reason in refused.message
        after = await handle.query(ReferralWorkflow.detail)
        assert (after.stage, after.timeline) == ("unassigned", before.timeline)
        assert await recorded(handle) == events

        cancelled = await act(
            handle,
            ReferralWorkflow.cancel,
            Cancel(actor=COORDINATOR, reason="Patient moved out of area"),
        )
        assert cancelled.stage == "cancelled" and cancelled.closed
        assert cancelled.task.status == "cancelled"
        outcome = await handle.result()
        assert outcome.stage == "cancelled"

        # Cancelled, the case has completed: the server refuses a second cancel (the API answers
        # 409, closed), the case still reads as cancelled, and nothing more is recorded.
        final = await handle.query(ReferralWorkflow.detail)
        events = await recorded(handle)
        with pytest.raises(RPCError) as refused:
            await handle.execute_update(
                ReferralWorkflow.cancel, Cancel(actor=COORDINATOR, reason="Cancelled twice")
            )
        assert refused.value.status == RPCStatusCode.NOT_FOUND
        assert await handle.query(ReferralWorkflow.detail) == final
        assert await handle.result() == outcome
        assert await recorded(handle) == events


async def test_outreach_until_unreachable_or_declined(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        for outcome in [OutreachOutcome.NO_ANSWER, OutreachOutcome.LEFT_MESSAGE]:
            detail = await act(
                handle,
                ReferralWorkflow.record_outreach,
                RecordOutreach(actor=COORDINATOR, channel=Channel.PHONE, outcome=outcome),
            )
            assert detail.stage == "awaiting_scheduling"
        last = await act(
            handle,
            ReferralWorkflow.record_outreach,
            RecordOutreach(
                actor=COORDINATOR, channel=Channel.SMS, outcome=OutreachOutcome.NO_ANSWER
            ),
        )
        assert last.stage == "unable_to_reach"
        assert last.task.status == "failed"
        assert last.counters["outreach_attempts"] == 3

        declined = await open_referral(client, task_queue)
        await declined.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        detail = await act(
            declined,
            ReferralWorkflow.record_outreach,
            RecordOutreach(
                actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.DECLINED
            ),
        )
        assert detail.stage == "patient_declined"


async def test_open_case_answers_created_only_once(time_skipping, client, engine, task_queue):
    from workflows.care.models import SYSTEM

    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        first = await handle.execute_update(ReferralWorkflow.open_case, OpenCase(actor=SYSTEM))
        second = await handle.execute_update(ReferralWorkflow.open_case, OpenCase(actor=SYSTEM))
        assert (first.created, second.created) == (True, False)
