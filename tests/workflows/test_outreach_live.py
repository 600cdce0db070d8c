"""Outreach through the real messaging activities: texts through the Twilio-protocol SMS sandbox,
email through the local SMTP server, the patient's contact read from the EHR sandbox, and the
patient's answers and delivery reports coming back through the webhooks, as in production."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.ehr.records import Ehr
from tests.messaging.kit import serve_webhooks
from workers.settings import Settings
from workflows.care.models import EventKind
from workflows.referral.models import Assign
from workflows.referral.workflow import ReferralWorkflow

from .outreach_kit import (
    communications,
    detail,
    messaging_worker,
    outreach_input,
    reachable_patient,
    skip_to,
)
from .referral_kit import COORDINATOR, act, ledger_written, open_referral

_numbers = itertools.count(7000)


def new_phone() -> str:
    """A made-up mobile number, unique in the session (the 555 exchange is fiction's)."""
    return f"+1206555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
def settings(sms_sandbox, mail_sandbox) -> Settings:
    update: dict[str, Any] = {"environment": "test", **sms_sandbox.settings()}
    update.update(mail_sandbox.settings())
    return Settings(_env_file=None).model_copy(update=update)


@asynccontextmanager
async def live(client, engine, task_queue, ehr_url, settings, monkeypatch):
    """The webhooks served and a worker with the registry's real activities, both on the
    sandboxes' settings (the status callbacks and patients' texts come to these webhooks)."""
    async with serve_webhooks(client, engine, settings) as url:
        served = settings.model_copy(update={"public_url": url})
        monkeypatch.setattr("workers.registry.get_settings", lambda: served)
        async with messaging_worker(client, engine, task_queue, ehr_url):
            yield


async def until(check, within: float = 15.0):
    for _ in range(int(within / 0.1)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


def texts_to(sms_sandbox, phone: str) -> list[dict]:
    return [m for m in sms_sandbox.messages() if m["to"] == phone]


async def case_has(handle, kind: EventKind, count: int = 1):
    found = await detail(handle)
    return found if sum(e.kind == kind for e in found.timeline) >= count else None


async def test_two_cases_texting_one_number_each_get_their_own_replies(
    time_skipping, client, engine, task_queue, ehr, ehr_url, sms_sandbox, settings, monkeypatch
):
    phone = new_phone()  # a family's shared phone: two patients, two open referrals
    await skip_to(time_skipping, 10)
    async with live(client, engine, task_queue, ehr_url, settings, monkeypatch):
        first = await open_referral(
            client, task_queue, outreach_input(ehr, patient=reachable_patient(ehr, phone))
        )
        await act(first, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        await until(lambda: len(texts_to(sms_sandbox, phone)) == 1)
        second = await open_referral(
            client, task_queue, outreach_input(ehr, patient=reachable_patient(ehr, phone))
        )
        await act(second, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        sent = await until(
            lambda: len(texts_to(sms_sandbox, phone)) == 2 and texts_to(sms_sandbox, phone)
        )
        ours = {message["from"] for message in sent}
        assert len(ours) == 2  # each case's conversation on a number of its own

        by_case = {}
        for handle in (first, second):
            found = await until(lambda h=handle: case_has(h, EventKind.OUTREACH))
            (attempt,) = found.outreach.attempts
            by_case[handle.id] = next(m for m in sent if m["sid"] == attempt.provider_id)
        sms_sandbox.reply(phone, by_case[first.id]["from"], "2")
        sms_sandbox.reply(phone, by_case[second.id]["from"], "Is this about my knee?")
        answered_first = await until(lambda: case_has(first, EventKind.REPLY))
        answered_second = await until(lambda: case_has(second, EventKind.REPLY))
        (one,) = [e for e in answered_first.timeline if e.kind == EventKind.REPLY]
        (two,) = [e for e in answered_second.timeline if e.kind == EventKind.REPLY]
        assert (one.details["reply"], one.details["text"]) == ("call_back", "2")
        assert (two.details["reply"], two.details["text"]) == ("other", "Is this about my knee?")
        assert [i.name for i in answered_first.checklist] == ["call-patient"]
        assert answered_second.checklist == []

        # The sandbox reports each text delivered: each case hears of its own, once.
        for handle in (first, second):
            found = await until(lambda h=handle: case_has(h, EventKind.DELIVERY))
            (told,) = [e for e in found.timeline if e.kind == EventKind.DELIVERY]
            assert told.details["status"] == "delivered"
            assert told.details["attempt"] == found.outreach.attempts[0].attempt_id
            written = await until(lambda o=found.order.resource: communications(ehr, o))
            assert len(written) == 1 and written[0]["status"] == "completed"


async def test_an_unreachable_number_falls_back_to_email_at_once(
    time_skipping,
    client,
    engine,
    task_queue,
    ehr,
    ehr_url,
    sms_sandbox,
    mail_sandbox,
    settings,
    monkeypatch,
):
    phone, email = new_phone(), f"pat{next(_numbers)}@example.org"
    sms_sandbox.unreachable(phone)
    await skip_to(time_skipping, 10)
    async with live(client, engine, task_queue, ehr_url, settings, monkeypatch):
        handle = await open_referral(
            client, task_queue, outreach_input(ehr, patient=reachable_patient(ehr, phone, email))
        )
        await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        # Undelivered (30003): the same touch goes again by email, at once.
        mails = await until(lambda: [m for m in mail_sandbox.messages() if email in m.rcpt_tos])
        assert len(mails) == 1
        found = await ledger_written(handle)
        assert found.outreach.unreachable == ["sms"]
        assert [a.channel for a in found.outreach.attempts] == ["sms", "email"]
        assert [e.details["status"] for e in found.timeline if e.kind == EventKind.DELIVERY] == [
            "undelivered"
        ]


async def test_stop_and_start_texted_by_the_patient_reach_the_case(
    time_skipping, client, engine, task_queue, ehr, ehr_url, sms_sandbox, settings, monkeypatch
):
    phone = new_phone()
    await skip_to(time_skipping, 10)
    async with live(client, engine, task_queue, ehr_url, settings, monkeypatch):
        handle = await open_referral(
            client, task_queue, outreach_input(ehr, patient=reachable_patient(ehr, phone))
        )
        await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        (text,) = await until(lambda: texts_to(sms_sandbox, phone))
        sms_sandbox.reply(phone, text["from"], "STOP")
        found = await until(lambda: case_has(handle, EventKind.CONSENT))
        assert found.outreach.opted_out == ["sms"]
        sms_sandbox.reply(phone, text["from"], "start")
        found = await until(lambda: case_has(handle, EventKind.CONSENT, 2))
        consents = [e.details for e in found.timeline if e.kind == EventKind.CONSENT]
        assert [(c["consent"], c["keyword"]) for c in consents] == [
            ("opted_out", "STOP"),
            ("opted_in", "START"),
        ]
        assert found.outreach.opted_out == [] and found.outreach.state == "running"
