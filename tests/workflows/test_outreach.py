"""A referral reaching out to its patient, on time-skipping Temporal: the cadence's touches by
the day, channels falling back, consent, replies, delivery reports, pause and resume, a staff
call when nothing reached the patient. Every expected time is worked out by hand below."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.fhir.communication import ATTEMPT_SYSTEM
from activities.staff import StaffNoticeRecord
from api.audit import case_trail
from tests.ehr.records import Ehr
from workflows.care import errors
from workflows.care.messaging import (
    DELIVERY_SIGNAL,
    REPLY_SIGNAL,
    Cadence,
    DeliveryStatus,
    Medium,
    ReplyKind,
    SendStatus,
    Touch,
)
from workflows.care.models import EventKind
from workflows.referral.models import (
    Assign,
    Cancel,
    Channel,
    MarkScheduled,
    OutreachOutcome,
    PauseOutreach,
    Priority,
    RecordOutreach,
    ReferralPolicy,
    ResumeOutreach,
)
from workflows.referral.workflow import ReferralWorkflow

from .outreach_kit import (
    LOS_ANGELES,
    Provider,
    communications,
    delivery,
    detail,
    messaging_worker,
    outreach_input,
    reply,
    skip_to,
)
from .referral_kit import COORDINATOR, NEW_YORK, OUTSIDER, act, ledger_written, open_referral

DAY = timedelta(days=1)
CLOSE = 10.0  # seconds: how near the planned instant a message goes (a workflow task or two)


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


async def until(check, within: float = 30.0):
    """The worker acts beside the test: wait (on the wall clock, the case's clock standing
    still) until `check` holds."""
    for _ in range(int(within / 0.05)):
        if result := check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def until_case(handle, check, within: float = 30.0):
    for _ in range(int(within / 0.05)):
        found = await detail(handle)
        if check(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the case never got there")


def near(moment: datetime, planned: datetime) -> bool:
    return abs((moment - planned).total_seconds()) < CLOSE


def events(found, kind: EventKind) -> list:
    return [e for e in found.timeline if e.kind == kind]


async def opened(client, task_queue, ehr, policy=None):
    handle = await open_referral(client, task_queue, outreach_input(ehr, policy))
    await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
    return handle


async def test_text_then_email_then_a_staff_call_when_nothing_reaches_the_patient(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 10)  # a Tuesday, 10:00 in Los Angeles
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        assert near(text.at, start)  # day 0, in the patient's daytime: at once
        assert text.message.body.endswith("Reply STOP to opt out.")
        assert "Cardiology" not in text.message.body and "consult" not in text.message.body

        await time_skipping.sleep(3 * DAY - timedelta(minutes=1))
        assert provider.by(Medium.EMAIL) == []
        await time_skipping.sleep(timedelta(minutes=2))
        (mail,) = await until(lambda: provider.by(Medium.EMAIL))
        assert near(mail.at, start + 3 * DAY)  # Friday 10:00

        await time_skipping.sleep(3 * DAY)  # day 6: Monday 10:00 in Los Angeles, 13:00 in NY
        found = await until_case(handle, lambda d: "call-patient" in {i.name for i in d.checklist})
        (call,) = found.checklist
        assert (call.title, call.status, call.owner) == ("Call the patient", "open", "cora")
        # Due by close of business on the next business day in the clinic: Tuesday 17:00 NY.
        monday = (start + 6 * DAY).astimezone(NEW_YORK).date()
        assert monday.weekday() == 0
        assert call.due_at == datetime.combine(monday + DAY, time(17), NEW_YORK)
        assert found.outreach.state == "done"
        assert [a.channel for a in found.outreach.attempts] == ["sms", "email", "call"]

        found = await ledger_written(handle)
        outreach = events(found, EventKind.OUTREACH)
        assert [e.details["channel"] for e in outreach] == ["sms", "email", "call"]
        assert [e.details["status"] for e in outreach] == ["sent", "sent", "task"]
        assert outreach[0].details["segments"] == "1"
        with Session(engine) as session:
            notices = session.exec(
                select(StaffNoticeRecord).where(StaffNoticeRecord.case_id == handle.id)
            ).all()
        assert [(n.kind, n.user_id) for n in notices] == [("outreach", "cora")]

        # Every message sent is one Communication in the EHR, under its attempt's id.
        order = found.order.resource
        written = await until(
            lambda: len(communications(ehr, order)) == 2 and communications(ehr, order)
        )
        ids = sorted(c["identifier"][0]["value"] for c in written)
        assert ids == sorted(e.details["attempt"] for e in outreach[:2])
        assert {c["identifier"][0]["system"] for c in written} == {ATTEMPT_SYSTEM}
        assert {c["status"] for c in written} == {"completed"}


async def test_a_text_at_night_waits_for_eight_in_the_patients_morning(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 22)  # 22:00 in Los Angeles: too late to text
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        found = await until_case(handle, lambda d: d.outreach and d.outreach.next_at is not None)
        morning = datetime.combine(start.astimezone(LOS_ANGELES).date() + DAY, time(8), LOS_ANGELES)
        assert found.outreach.next_at == morning and found.outreach.next_channel == "sms"
        await time_skipping.sleep(morning - start - timedelta(minutes=1))
        assert provider.by(Medium.SMS) == []
        await time_skipping.sleep(timedelta(minutes=2))
        (text,) = await until(lambda: provider.by(Medium.SMS))
        assert near(text.at, morning)


async def test_stop_mid_cadence_then_start(time_skipping, client, engine, task_queue, ehr, ehr_url):
    texts = Cadence(
        touches=[
            Touch(after=0 * DAY, channel=Medium.SMS),
            Touch(after=2 * DAY, channel=Medium.SMS),
            Touch(after=4 * DAY, channel=Medium.SMS),
        ]
    )
    policy = ReferralPolicy(cadences={Priority.ROUTINE: texts})
    provider = Provider()
    start = await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr, policy)
        (first,) = await until(lambda: provider.by(Medium.SMS))
        now = await time_skipping.get_current_time()
        await handle.signal(
            REPLY_SIGNAL, reply(first.message.attempt_id, "STOP", ReplyKind.OPT_OUT, now)
        )
        found = await until_case(handle, lambda d: events(d, EventKind.CONSENT))
        (consent,) = events(found, EventKind.CONSENT)
        assert consent.details == {"channel": "sms", "consent": "opted_out", "keyword": "STOP"}
        assert found.outreach.opted_out == ["sms"] and found.outreach.state == "running"

        await time_skipping.sleep(2 * DAY + timedelta(minutes=1))  # day 2: texts are off
        (mail,) = await until(lambda: provider.by(Medium.EMAIL))
        assert near(mail.at, start + 2 * DAY) and len(provider.by(Medium.SMS)) == 1

        now = await time_skipping.get_current_time()
        await handle.signal(
            REPLY_SIGNAL, reply(first.message.attempt_id, "START", ReplyKind.OPT_IN, now)
        )
        await until_case(handle, lambda d: d.outreach.opted_out == [])
        await time_skipping.sleep(2 * DAY)  # day 4: by text again
        await until(lambda: len(provider.by(Medium.SMS)) == 2)
        assert near(provider.by(Medium.SMS)[1].at, start + 4 * DAY)
        found = await ledger_written(handle)
        assert [e.details["consent"] for e in events(found, EventKind.CONSENT)] == [
            "opted_out",
            "opted_in",
        ]
        assert found.outreach.state == "done"  # keywords never stop the cadence


async def test_an_undelivered_text_goes_again_by_email_at_once(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        now = await time_skipping.get_current_time()
        news = delivery(text.message.attempt_id, DeliveryStatus.UNDELIVERED, now)
        await handle.signal(DELIVERY_SIGNAL, news)
        await handle.signal(DELIVERY_SIGNAL, news)  # told twice: the same as once
        (mail,) = await until(lambda: provider.by(Medium.EMAIL))
        assert near(mail.at, now)
        found = await ledger_written(handle)
        (told,) = events(found, EventKind.DELIVERY)
        assert told.details["status"] == "undelivered" and told.details["error_code"] == "30006"
        assert found.outreach.unreachable == ["sms"]
        sms, email = found.outreach.attempts
        assert (sms.delivery, email.channel, email.touch) == ("undelivered", "email", 0)
        # Day 3's email is the next touch; the channel that failed is not tried again.
        await time_skipping.sleep(3 * DAY)
        await until(lambda: len(provider.by(Medium.EMAIL)) == 2)
        assert len(provider.by(Medium.SMS)) == 1


async def test_a_channel_without_an_address_falls_back_at_once(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider(statuses={Medium.SMS: SendStatus.NO_ADDRESS})
    await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (mail,) = await until(lambda: provider.by(Medium.EMAIL))
        found = await ledger_written(handle)
        outreach = events(found, EventKind.OUTREACH)
        assert [(e.details["channel"], e.details["status"]) for e in outreach] == [
            ("sms", "no_address"),
            ("email", "sent"),
        ]
        written = await until(
            lambda: (
                len(communications(ehr, found.order.resource)) == 2
                and communications(ehr, found.order.resource)
            )
        )
        assert sorted(c["status"] for c in written) == ["completed", "not-done"]


async def test_a_reply_stops_the_cadence_and_a_2_asks_for_a_call(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 10)  # Tuesday
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        now = await time_skipping.get_current_time()
        news = reply(text.message.attempt_id, "2", ReplyKind.CALL_BACK, now)
        await handle.signal(REPLY_SIGNAL, news)
        await handle.signal(REPLY_SIGNAL, news)  # delivered twice: one reply
        found = await until_case(handle, lambda d: d.outreach.state == "stopped")
        assert found.outreach.stopped_reason == "replied"
        (answer,) = events(found, EventKind.REPLY)
        assert answer.summary == "The patient asked for a call back"
        assert answer.details["text"] == "2" and answer.details["reply"] == "call_back"
        (call,) = found.checklist
        # Tuesday 13:00 in New York: due Wednesday 17:00.
        tuesday = start.astimezone(NEW_YORK).date()
        assert call.due_at == datetime.combine(tuesday + DAY, time(17), NEW_YORK)

        await time_skipping.sleep(7 * DAY)
        assert len(provider.sent) == 1  # nothing more after the reply
        done = await act(
            handle,
            ReferralWorkflow.record_outreach,
            RecordOutreach(
                actor=COORDINATOR, channel=Channel.PHONE, outcome=OutreachOutcome.REACHED
            ),
        )
        assert done.checklist[0].status == "met"


async def test_reply_1_confirms_the_appointment_and_scheduling_stops_the_cadence(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 10)  # Tuesday 10:00 in Los Angeles
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        await until(lambda: provider.by(Medium.SMS))
        await time_skipping.sleep(DAY)
        visit = start + 6 * DAY + timedelta(hours=1)  # Monday 11:00 in Los Angeles
        scheduled = await act(
            handle,
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit),
        )
        assert scheduled.stage == "scheduled"
        found = await until_case(handle, lambda d: d.outreach.kind == "referral.reminder")
        # Two days before the visit: Saturday 11:00 in Los Angeles, a daytime hour.
        assert found.outreach.next_at == visit - 2 * DAY
        await time_skipping.sleep(visit - 2 * DAY - await time_skipping.get_current_time())
        await until(lambda: len(provider.by(Medium.SMS)) == 2)
        reminder = provider.by(Medium.SMS)[1]
        assert near(reminder.at, visit - 2 * DAY)
        assert "Reply 1 to confirm, 2 to talk to us" in reminder.message.body
        assert provider.by(Medium.EMAIL) == []  # day 3's email never went: the case is booked

        now = await time_skipping.get_current_time()
        await handle.signal(
            REPLY_SIGNAL, reply(reminder.message.attempt_id, "1", ReplyKind.CONFIRM, now)
        )
        found = await until_case(handle, lambda d: "appointment_confirmed_at" in d.moments)
        assert near(found.moments["appointment_confirmed_at"], now)
        assert events(found, EventKind.REPLY)[-1].summary == "Patient confirmed the appointment"


async def test_pause_and_resume_where_it_left_off(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        await until(lambda: provider.by(Medium.SMS))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReferralWorkflow.resume_outreach, ResumeOutreach(actor=COORDINATOR)
            )
        assert refused.value.cause.type == errors.ACTION_NOT_ALLOWED
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReferralWorkflow.pause_outreach, PauseOutreach(actor=OUTSIDER)
            )
        assert refused.value.cause.type == errors.FORBIDDEN

        await time_skipping.sleep(DAY)
        paused = await act(
            handle,
            ReferralWorkflow.pause_outreach,
            PauseOutreach(actor=COORDINATOR, reason="on the phone"),
        )
        assert paused.outreach.state == "paused" and paused.outreach.next_at is None
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReferralWorkflow.pause_outreach, PauseOutreach(actor=COORDINATOR)
            )
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.type == errors.ACTION_NOT_ALLOWED

        await time_skipping.sleep(2 * DAY + timedelta(hours=1))  # day 3 passes while paused
        assert provider.by(Medium.EMAIL) == []
        resumed = await act(
            handle, ReferralWorkflow.resume_outreach, ResumeOutreach(actor=COORDINATOR)
        )
        # Paused from day 1 to day 3 + 1 hour: the email moves from day 3 to day 5 + 1 hour.
        assert resumed.outreach.state == "running"
        assert near(resumed.outreach.next_at, start + 5 * DAY + timedelta(hours=1))
        await time_skipping.sleep(2 * DAY + timedelta(minutes=1))
        (mail,) = await until(lambda: provider.by(Medium.EMAIL))
        assert near(mail.at, start + 5 * DAY + timedelta(hours=1))
        notes = [e.details.get("outreach") for e in (await detail(handle)).timeline]
        assert notes.count("paused") == 1 and notes.count("running") == 1


async def test_a_long_cadence_continues_as_new_with_its_outreach_and_stays_bounded(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    hourly = Cadence(
        touches=[Touch(after=timedelta(0), channel=Medium.SMS)]
        + [Touch(after=timedelta(hours=h), channel=Medium.EMAIL) for h in range(1, 25)],
        fallback=[Medium.SMS, Medium.EMAIL],
    )
    policy = ReferralPolicy(cadences={Priority.ROUTINE: hourly}, history_events=60)
    provider = Provider()
    await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr, policy)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        now = await time_skipping.get_current_time()
        await handle.signal(
            REPLY_SIGNAL, reply(text.message.attempt_id, "STOP", ReplyKind.OPT_OUT, now)
        )
        await time_skipping.sleep(timedelta(hours=25))
        await until(lambda: len(provider.sent) == 25)
        found = await until_case(handle, lambda d: d.outreach.state == "done")
        assert found.run >= 2  # went on in new runs, the outreach with it
        assert found.outreach.sent == 25 and found.outreach.opted_out == ["sms"]
        assert len(found.outreach.attempts) == 20  # the newest only; the ledger keeps them all
        assert found.outreach.attempts[-1].attempt_id == f"{handle.id}-m25"
        found = await ledger_written(handle)
        trail = [e for e in case_trail(engine, handle.id) if e.kind == "outreach"]
        assert [e.details["attempt"] for e in trail] == [f"{handle.id}-m{n}" for n in range(1, 26)]
        written = await until(
            lambda: (
                len(communications(ehr, found.order.resource)) == 25
                and communications(ehr, found.order.resource)
            )
        )
        assert len({c["identifier"][0]["value"] for c in written}) == 25


async def test_a_case_opened_before_outreach_sends_nothing_and_refuses_its_actions(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        order = outreach_input(ehr).model_copy(update={"outreach": None})
        handle = await open_referral(client, task_queue, order)
        await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        now = await time_skipping.get_current_time()
        await handle.signal(REPLY_SIGNAL, reply(f"{handle.id}-m1", "2", ReplyKind.CALL_BACK, now))
        await handle.signal(
            DELIVERY_SIGNAL, delivery(f"{handle.id}-m1", DeliveryStatus.FAILED, now)
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReferralWorkflow.pause_outreach, PauseOutreach(actor=COORDINATOR)
            )
        assert refused.value.cause.type == errors.ACTION_NOT_ALLOWED
        await time_skipping.sleep(7 * DAY)
        found = await ledger_written(handle)
        assert found.outreach is None and found.checklist == []
        assert provider.sent == {} and provider.contacts_read == 0
        assert not events(found, EventKind.REPLY) and not events(found, EventKind.DELIVERY)


async def test_closing_a_case_that_texted_releases_its_conversation_once(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        await until(lambda: provider.by(Medium.SMS))
        await handle.execute_update(
            ReferralWorkflow.cancel, Cancel(actor=COORDINATOR, reason="moved away")
        )
        outcome = await handle.result()
        assert outcome.stage == "cancelled"
        assert provider.released == [handle.id]
        found = await detail(handle)
        assert found.outreach.state == "stopped" and found.outreach.stopped_reason == "case closed"


async def test_a_time_zone_the_case_cannot_read_falls_back_to_the_clinics(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider(timezone="Mars/Olympus_Mons")
    start = await skip_to(time_skipping, 6)  # 6:00 in Los Angeles is 9:00 in New York
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        assert near(text.at, start)
        assert (await detail(handle)).outreach.timezone == "America/New_York"


async def test_booking_the_visit_completes_an_open_call_task(
    time_skipping, client, engine, task_queue, ehr, ehr_url
):
    provider = Provider()
    start = await skip_to(time_skipping, 10)
    async with messaging_worker(client, engine, task_queue, ehr_url, provider):
        handle = await opened(client, task_queue, ehr)
        (text,) = await until(lambda: provider.by(Medium.SMS))
        now = await time_skipping.get_current_time()
        await handle.signal(
            REPLY_SIGNAL, reply(text.message.attempt_id, "2", ReplyKind.CALL_BACK, now)
        )
        found = await until_case(handle, lambda d: d.checklist)
        assert found.checklist[0].status == "open"
        visit = start + 3 * DAY
        await act(
            handle,
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit),
        )
        found = await until_case(handle, lambda d: d.checklist[0].status == "met")
        assert found.checklist[0].note == "the appointment is booked"
