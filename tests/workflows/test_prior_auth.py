"""Prior-authorization scenarios on time-skipping Temporal, with the real activities against the
EHR sandbox and the payer sandbox. Expected dates are worked out by hand from the rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.fhir.models import EhrEvent
from activities.payer.response import parse_response
from api.audit import case_trail
from tests.conftest import _binary
from tests.ehr.records import Ehr
from workers.client import register_search_attributes
from workflows.care import errors
from workflows.care.models import EventKind
from workflows.prior_auth.models import (
    Assign,
    AttachDocument,
    Cancel,
    PriorAuthPolicy,
    StartAppeal,
    SubmitNow,
    WaivePrerequisite,
)
from workflows.prior_auth.workflow import PriorAuthWorkflow
from workflows.referral.models import MarkScheduled
from workflows.referral.workflow import ReferralWorkflow

from .prior_auth_kit import (
    COORDINATOR,
    COVERAGE,
    CREATININE,
    CREATININE_LAB,
    DENIAL,
    NEW_YORK,
    NOTES,
    SUPERVISOR,
    THERAPY,
    Chart,
    act,
    chart,
    close_of_business_before,
    decide,
    local_day,
    midnight,
    open_case,
    open_referral,
    prior_auth_input,
    read,
    received,
    running,
    set_rules,
    settled,
)
from .referral_kit import COORDINATOR as REFERRAL_COORDINATOR
from .referral_kit import close_of_business, referral_input


@pytest.fixture
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test: the prerequisite check searches the EHR for records
    written since a window before the server's clock, so that clock starts at today's."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    async with env:
        yield env


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def payer(payer_sandbox_http: httpx.Client) -> httpx.Client:
    return payer_sandbox_http


def kinds(detail) -> list[EventKind]:
    return [event.kind for event in detail.timeline]


def statuses(detail) -> dict[str, str]:
    return {item.name: item.status for item in detail.checklist}


async def rejected(handle, update, action) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(update, action)
    assert isinstance(failure.value.cause, ApplicationError)
    return failure.value.cause


async def mri_chart(env: WorkflowEnvironment, ehr: Ehr) -> tuple[Chart, object]:
    """A chart with fresh notes (2 days old), 7 weeks of therapy ended 10 days ago, coverage."""
    now = await env.get_current_time()
    today = now.date()
    record = chart(ehr, today)
    record.note(now - timedelta(days=2))
    record.therapy(today - timedelta(days=59), today - timedelta(days=10))
    return record, now


async def test_fresh_prerequisites_are_approved_on_the_first_request(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A1", "days": 60})
    record, now = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        approved = await settled(handle, lambda d: d.stage == "approved")

        assert statuses(approved) == {
            "clinical_notes": "met",
            "conservative_therapy": "met",
            "coverage": "met",
        }
        assert approved.counters["submissions"] == 1
        [request] = received(payer, case.case_id)
        number = request["response"]["entry"][0]["resource"]["preAuthRef"]
        assert approved.references["auth_number"] == number
        # Valid 60 days from the clinic's today (the request's service date): until the start of
        # the 61st day, New York time.
        today = local_day(now)
        assert approved.moments["authorized_from"] == midnight(today, NEW_YORK)
        assert approved.moments["authorized_until"] == midnight(
            today + timedelta(days=60), NEW_YORK
        )
        assert approved.due_at == approved.moments["authorized_until"]
        # The notes went to the payer as supporting information.
        claim = request["claim"]
        assert len(claim["supportingInfo"]) == 1

        ledger = case_trail(engine, case.case_id)
        verified = [e for e in ledger if e.kind == EventKind.VERIFIED]
        assert sorted(e.details["prerequisite"] for e in verified) == [
            "clinical_notes",
            "conservative_therapy",
            "coverage",
        ]
        assert all(e.evidence and e.evidence[0].sha256 for e in verified)
        assert [e.details["decision"] for e in ledger if e.kind == EventKind.DECIDED] == [
            "approved"
        ]


async def test_a_lab_that_expires_before_the_request_is_collected_again(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "74177", "action": "A1", "days": 30})
    now = await time_skipping.get_current_time()
    today = now.date()
    record = chart(ehr, today, code="74177")
    taken = today - timedelta(days=25)  # counts 30 days from 00:00 UTC: until today + 5
    record.lab(taken)
    case = prior_auth_input(record, [CREATININE_LAB, NOTES, COVERAGE], code="74177")
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        await handle.execute_update(PriorAuthWorkflow.assign, Assign(actor=COORDINATOR))
        lab = f"lab:{CREATININE}"
        collecting = await settled(handle, lambda d: statuses(d)[lab] == "met")
        assert statuses(collecting) == {lab: "met", "clinical_notes": "open", "coverage": "met"}
        item = next(i for i in collecting.checklist if i.name == lab)
        expiry = today + timedelta(days=5)
        assert item.expires_at == midnight(expiry)
        assert item.owner == "cora"

        # Three days before it goes stale, the owner is reminded.
        await time_skipping.sleep(midnight(today + timedelta(days=2)) - now - timedelta(minutes=1))
        assert EventKind.REMINDED not in kinds(await read(handle))
        await time_skipping.sleep(timedelta(minutes=2))
        warned = await settled(handle, lambda d: EventKind.REMINDED in kinds(d))
        assert warned.timeline[-1].details == {
            "prerequisite": lab,
            "expires_at": midnight(expiry).isoformat(),
        }

        # The lab goes stale on day 5, before the notes are in: it reopens, saying why.
        later = midnight(expiry) + timedelta(minutes=1)
        await time_skipping.sleep(later - await time_skipping.get_current_time())
        stale = await settled(handle, lambda d: statuses(d)[lab] == "expired")
        item = next(i for i in stale.checklist if i.name == lab)
        assert item.note == (
            f"Lab result from {taken:%b} {taken.day} expired on {expiry:%b} {expiry.day}; "
            "collect a new one"
        )
        assert EventKind.EXPIRED in kinds(stale)
        assert stale.stage == "collecting"

        # Day 4: the notes are attached; the request still waits for a fresh lab.
        await time_skipping.sleep(timedelta(days=1))
        note = record.note(await time_skipping.get_current_time())
        attached = await act(
            handle,
            PriorAuthWorkflow.attach_document,
            AttachDocument(actor=COORDINATOR, document=note, prerequisite="clinical_notes"),
        )
        noted = await settled(handle, lambda d: statuses(d)["clinical_notes"] == "met")
        assert attached.stage == noted.stage == "collecting"
        assert statuses(noted)[lab] == "expired"

        # A new lab result in the EHR: checked again, met, and the request goes out by itself.
        fresh = record.lab((await time_skipping.get_current_time()).date())
        await handle.signal(PriorAuthWorkflow.ehr_changed, EhrEvent(resource=fresh, status="final"))
        approved = await settled(handle, lambda d: d.stage == "approved")
        assert approved.counters["submissions"] == 1
        [request] = received(payer, case.case_id)
        assert [i["valueReference"]["reference"] for i in request["claim"]["supportingInfo"]] == [
            note
        ]


async def test_pended_then_decided_on_day_four_by_notification(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A4", "then": "A1", "days": 60})
    record, _ = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        pended = await settled(handle, lambda d: d.stage == "pended")
        submitted = pended.moments["submitted_at"]
        assert pended.due_at == submitted + timedelta(days=7)  # CMS-0057-F: 7 calendar days
        assert pended.references["pended_reference"].startswith("PEND")
        # The pend itself told again (as a notification would): nothing changes.
        [request] = received(payer, case.case_id)
        await handle.signal(PriorAuthWorkflow.payer_decided, parse_response(request["response"]))
        await time_skipping.sleep(timedelta(minutes=1))
        assert (await handle.query(PriorAuthWorkflow.detail)).events == pended.events

        await time_skipping.sleep(timedelta(days=4))
        decision = decide(payer, case.case_id, 1, action="A1")
        await handle.signal(PriorAuthWorkflow.payer_decided, decision)
        approved = await settled(handle, lambda d: d.stage == "approved")
        assert approved.references["auth_number"] == decision.items[0].auth_number
        assert EventKind.ESCALATED not in kinds(approved)

        # The payer's retry delivers the same decision again: nothing changes.
        await handle.signal(PriorAuthWorkflow.payer_decided, decision)
        await time_skipping.sleep(timedelta(minutes=1))
        again = await handle.query(PriorAuthWorkflow.detail)
        assert (again.stage, again.events) == (approved.stage, approved.events)
        decided = [e for e in again.timeline if e.kind == EventKind.DECIDED]
        assert [e.details["decision"] for e in decided] == ["pended", "approved"]


async def test_pended_past_seven_days_escalates_and_asks_the_payer_once(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A4", "then": "A1", "days": 60})
    record, _ = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        pended = await settled(handle, lambda d: d.stage == "pended")
        due = pended.moments["submitted_at"] + timedelta(days=7)

        await time_skipping.sleep(due - await time_skipping.get_current_time() - timedelta(hours=1))
        before = await handle.query(PriorAuthWorkflow.detail)
        assert EventKind.ESCALATED not in kinds(before) and "inquiries" not in before.counters

        await time_skipping.sleep(timedelta(hours=2))
        late = await settled(handle, lambda d: d.counters.get("inquiries") == 1)
        assert late.stalled is True and EventKind.ESCALATED in kinds(late)
        assert late.stage == "pended"  # the payer still says pended
        await time_skipping.sleep(timedelta(days=5))
        history = await handle.fetch_history()
        inquiries = [
            e
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "pas_inquire"
        ]
        assert len(inquiries) == 1
        assert len(received(payer, case.case_id)) == 1  # and no second request

        # Cancelled while pended: the payer is told first.
        cancelled = await act(
            handle, PriorAuthWorkflow.cancel, Cancel(actor=COORDINATOR, reason="Patient declined")
        )
        assert cancelled.stage == "cancelled" and cancelled.closed
        assert cancelled.timeline[-1].details["payer_cancel"] == "C"
        original, update = received(payer, case.case_id)
        assert (original["identifier"], original["cancelled"]) == (f"{case.case_id}-1", True)
        assert update["identifier"] == f"{case.case_id}-1-cancel"


async def test_denied_then_appealed_with_a_new_document_and_approved(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A3", "reason": DENIAL})
    record, _ = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        await handle.execute_update(PriorAuthWorkflow.assign, Assign(actor=COORDINATOR))
        denied = await settled(handle, lambda d: d.stage == "denied")
        assert denied.references["denial_reason"] == "CR (Clinical review: criteria not met)"
        decided = denied.moments["decided_at"]
        assert denied.due_at == close_of_business(decided, 3)

        appealing = await act(
            handle, PriorAuthWorkflow.start_appeal, StartAppeal(actor=COORDINATOR, note="PT notes")
        )
        assert appealing.stage == "appealing"
        assert appealing.due_at == close_of_business(appealing.moments["appeal_started_at"], 10)
        letter = record.note(await time_skipping.get_current_time())
        await act(
            handle,
            PriorAuthWorkflow.attach_document,
            AttachDocument(actor=COORDINATOR, document=letter),
        )
        set_rules(payer, {"service": "72148", "action": "A1", "days": 60})
        approved = await act(handle, PriorAuthWorkflow.submit_now, SubmitNow(actor=COORDINATOR))
        assert approved.stage == "approved"
        assert approved.counters["submissions"] == 2
        first, second = received(payer, case.case_id)
        assert (first["identifier"], second["identifier"]) == (
            f"{case.case_id}-1",
            f"{case.case_id}-2",
        )
        supporting = [i["valueReference"]["reference"] for i in second["claim"]["supportingInfo"]]
        assert letter in supporting and len(supporting) == 2


async def test_an_approval_that_lapses_undelivered_is_authorized_again(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A1", "days": 10})
    record, now = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        approved = await settled(handle, lambda d: d.stage == "approved")
        until = midnight(local_day(now) + timedelta(days=10), NEW_YORK)
        assert approved.moments["authorized_until"] == until

        # Five business days before it ends, the owner is reminded to have it delivered.
        reminder = close_of_business_before(until, 5)
        await time_skipping.sleep(reminder - await time_skipping.get_current_time())
        await time_skipping.sleep(timedelta(minutes=1))
        reminded = await handle.query(PriorAuthWorkflow.detail)
        assert kinds(reminded)[-1] == EventKind.REMINDED and reminded.stage == "approved"

        await time_skipping.sleep(until - await time_skipping.get_current_time())
        again = await settled(handle, lambda d: d.counters.get("submissions") == 2)
        assert again.counters["reauthorizations"] == 1
        ledger = case_trail(engine, case.case_id)
        lapsed = next(e for e in ledger if e.kind == EventKind.LAPSED)
        assert (lapsed.stage_before, lapsed.stage_after) == ("approved", "collecting")
        after = [e.kind for e in ledger if e.seq > lapsed.seq]
        assert after.count(EventKind.VERIFIED) == 3  # every prerequisite checked again
        assert EventKind.SUBMITTED in after


async def test_only_a_supervisor_waives_a_prerequisite(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A1", "days": 60})
    now = await time_skipping.get_current_time()
    record = chart(ehr, now.date())
    record.note(now - timedelta(days=1))  # no therapy on file
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        collecting = await settled(handle, lambda d: statuses(d)["clinical_notes"] == "met")
        therapy = next(i for i in collecting.checklist if i.name == "conservative_therapy")
        assert therapy.status == "open"
        assert therapy.note == "No conservative therapy of 6 weeks on file"

        reason = "Post-surgical follow-up: the payer's policy needs no therapy first"
        refused = await rejected(
            handle,
            PriorAuthWorkflow.waive_prerequisite,
            WaivePrerequisite(
                actor=COORDINATOR, prerequisite="conservative_therapy", reason=reason
            ),
        )
        assert refused.type == errors.FORBIDDEN
        waived = await act(
            handle,
            PriorAuthWorkflow.waive_prerequisite,
            WaivePrerequisite(actor=SUPERVISOR, prerequisite="conservative_therapy", reason=reason),
        )
        assert statuses(waived)["conservative_therapy"] == "waived"
        approved = await settled(handle, lambda d: d.stage == "approved")
        [entry] = [e for e in case_trail(engine, case.case_id) if e.kind == EventKind.WAIVED]
        assert (entry.actor, entry.details["reason"]) == ("sam", reason)
        assert approved.counters["submissions"] == 1


async def test_a_referral_waits_for_its_authorization_before_scheduling(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A4", "then": "A1", "days": 60})
    record, _ = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(record, [NOTES, THERAPY, COVERAGE])
    referral = referral_input(case_id=case.case_id.replace("priorauth-", "referral-"))
    referral = referral.model_copy(update={"authorization": case.case_id})
    case = case.model_copy(update={"referral": referral.case_id})
    async with running(client, engine, task_queue, ehr_url, payer_url):
        visit = await open_referral(client, task_queue, referral)
        await visit.execute_update(ReferralWorkflow.assign, Assign(actor=REFERRAL_COORDINATOR))
        handle = await open_case(client, task_queue, case)
        await settled(handle, lambda d: d.stage == "pended")

        at = await time_skipping.get_current_time() + timedelta(days=5)
        booking = MarkScheduled(
            actor=REFERRAL_COORDINATOR, appointment="Appointment/mri-1", appointment_at=at
        )
        refused = await rejected(visit, ReferralWorkflow.mark_scheduled, booking)
        assert refused.type == errors.ACTION_NOT_ALLOWED
        assert refused.message == (
            f"Prior authorization {case.case_id} has no decision yet: schedule once it is approved"
        )

        await handle.signal(
            PriorAuthWorkflow.payer_decided, decide(payer, case.case_id, 1, action="A1")
        )
        told = await settled(visit, lambda d: d.references.get("authorization_stage") == "approved")
        assert told.references["authorization"] == case.case_id
        scheduled = await act(visit, ReferralWorkflow.mark_scheduled, booking)
        assert scheduled.stage == "scheduled"


async def test_a_long_pend_goes_on_in_a_new_run_with_its_checklist(
    time_skipping, client, engine, task_queue, ehr, ehr_url, payer_url, payer
):
    set_rules(payer, {"service": "72148", "action": "A4", "then": "A1", "days": 60})
    record, _ = await mri_chart(time_skipping, ehr)
    case = prior_auth_input(
        record, [NOTES, THERAPY, COVERAGE], policy=PriorAuthPolicy(history_events=60)
    )
    async with running(client, engine, task_queue, ehr_url, payer_url):
        handle = await open_case(client, task_queue, case)
        pended = await settled(handle, lambda d: d.stage == "pended")
        # EHR news about the order while it waits (signals: an update that lands while a run
        # hands over to the next one can leave the time-skipping test server's clock locked).
        # No time passes meanwhile: sleeping through a run's hand-over can lock the test server.
        for day in range(12):
            await handle.signal(
                PriorAuthWorkflow.ehr_changed, EhrEvent(resource=f"Observation/o{day}")
            )
        later = await settled(handle, lambda d: d.run > 1, seconds=30)
        assert later.stage == "pended"
        assert later.checklist == pended.checklist
        assert later.due_at == pended.due_at  # recomputed from the moments carried

        await handle.signal(
            PriorAuthWorkflow.payer_decided, decide(payer, case.case_id, 1, action="A1")
        )
        approved = await settled(handle, lambda d: d.stage == "approved")
        assert approved.counters["submissions"] == 1
        assert [e.seq for e in case_trail(engine, case.case_id)] == list(
            range(1, approved.events + 1)
        )
