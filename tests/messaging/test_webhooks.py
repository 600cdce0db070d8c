"""Twilio's webhooks reach the case: status callbacks and patients' texts, as the SMS sandbox
really sends them, to the webhooks served by uvicorn, signalled to a real (time-skipping)
Temporal workflow that records what it hears."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig
from temporalio.worker import Worker

from activities.ledger.tables import AccessRow
from activities.messaging.addresses import address_hash
from activities.messaging.send import INBOUND_PATH, STATUS_PATH, MessagingActivities
from activities.messaging.tables import ConsentRecord, OutboundRecord
from api.auth import mint_token
from tests.conftest import SmsSandbox
from workers.settings import Settings
from workflows.care.messaging import DeliveryStatus, Medium, ReplyKind, SendStatus
from workflows.care.models import Role

from .conftest import message, messaging_settings, new_phone
from .kit import SignalRecorder, serve_webhooks, twilio_signature, until


@dataclass
class World:
    client: Client
    engine: Engine
    sms: SmsSandbox
    url: str  # where the webhooks are served
    activities: MessagingActivities
    task_queue: str
    settings: Settings

    async def case(self) -> WorkflowHandle:
        case_id = f"referral-{uuid.uuid4().hex[:12]}"
        return await self.client.start_workflow(
            SignalRecorder.run, 30, id=case_id, task_queue=self.task_queue
        )

    def row(self, attempt_id: str) -> OutboundRecord:
        with Session(self.engine) as session:
            return session.get_one(OutboundRecord, attempt_id)

    def consent(self, phone: str) -> ConsentRecord | None:
        hashed = address_hash(self.settings.messaging_address_key, Medium.SMS, phone)
        with Session(self.engine) as session:
            return session.get(ConsentRecord, (hashed, "sms"))

    async def post(self, path: str, form: dict[str, str], token: str | None = None, **headers):
        url = self.url + path
        signature = twilio_signature(token or self.sms.auth_token, url, form)
        async with httpx.AsyncClient() as http:
            return await http.post(
                url, data=form, headers={"X-Twilio-Signature": signature, **headers}
            )


@pytest.fixture
async def world(client, engine, fhir, sms_sandbox, task_queue) -> AsyncIterator[World]:
    settings = messaging_settings(sms_sandbox)
    async with serve_webhooks(client, engine, settings) as url:
        settings = settings.model_copy(update={"public_url": url})
        activities = MessagingActivities(engine, fhir, settings)
        async with Worker(client, task_queue=task_queue, workflows=[SignalRecorder]):
            yield World(client, engine, sms_sandbox, url, activities, task_queue, settings)


async def heard(handle: WorkflowHandle):
    return await handle.query(SignalRecorder.received)


async def test_a_final_status_is_told_to_the_case_once(world: World, patient):
    case = await world.case()
    outbound = message(patient(new_phone()), case_id=case.id)
    sent = await world.activities.send(outbound)
    assert await until(lambda: world.row(outbound.attempt_id).delivery == "delivered")
    assert await until(lambda: _callbacks_done(world, sent.provider_id))
    replies, deliveries = await heard(case)
    assert replies == [] and len(deliveries) == 1
    [news] = deliveries
    assert (news.attempt_id, news.provider_id, news.status, news.error_code) == (
        outbound.attempt_id,
        sent.provider_id,
        DeliveryStatus.DELIVERED,
        None,
    )


def _callbacks_done(world: World, sid: str) -> bool:
    [sent] = [m for m in world.sms.messages() if m["sid"] == sid]
    answers = [c["answer"] for c in sent["callbacks"]]
    return answers == [200, 200, 200]


async def test_an_undelivered_message_is_told_with_twilios_error(world: World, patient):
    case = await world.case()
    phone = new_phone()
    world.sms.unreachable(phone)
    outbound = message(patient(phone), case_id=case.id)
    await world.activities.send(outbound)
    assert await until(lambda: world.row(outbound.attempt_id).delivery == "undelivered")
    _, [news] = await until(lambda: _with_delivery(case))
    assert (news.status, news.error_code) == (DeliveryStatus.UNDELIVERED, "30003")
    assert world.row(outbound.attempt_id).error_code == "30003"


async def _with_delivery(case: WorkflowHandle):
    replies, deliveries = await heard(case)
    return (replies, deliveries) if deliveries else None


async def test_a_repeated_or_late_status_changes_nothing(world: World, patient):
    case = await world.case()
    phone = new_phone()
    outbound = message(patient(phone), case_id=case.id)
    sent = await world.activities.send(outbound)
    assert await until(lambda: _callbacks_done(world, sent.provider_id))
    before = world.row(outbound.attempt_id)
    base = {
        "AccountSid": world.sms.account_sid,
        "MessageSid": sent.provider_id,
        "From": before.sender,
        "To": phone,
    }
    for status in ("delivered", "sent", "queued", "undelivered"):
        answer = await world.post(STATUS_PATH, {**base, "MessageStatus": status})
        assert answer.status_code == 200
    after = world.row(outbound.attempt_id)
    assert (after.delivery, after.delivery_at, after.error_code) == (
        "delivered",
        before.delivery_at,
        None,
    )
    _, deliveries = await heard(case)
    assert len(deliveries) == 1


async def test_a_forged_or_unsigned_callback_is_refused_and_changes_nothing(
    world: World, patient, fhir
):
    case = await world.case()
    phone = new_phone()
    # Sent with callbacks going nowhere: the message stays queued until we say otherwise.
    quiet = MessagingActivities(
        world.engine, fhir, world.settings.model_copy(update={"public_url": "http://127.0.0.1:9"})
    )
    outbound = message(patient(phone), case_id=case.id)
    sent = await quiet.send(outbound)
    form = {
        "AccountSid": world.sms.account_sid,
        "MessageSid": sent.provider_id,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "From": world.row(outbound.attempt_id).sender,
        "To": phone,
    }
    async with httpx.AsyncClient() as http:
        unsigned = await http.post(world.url + STATUS_PATH, data=form)
        elsewhere = twilio_signature(
            world.sms.auth_token, "https://elsewhere.example" + STATUS_PATH, form
        )
        other_url = await http.post(
            world.url + STATUS_PATH, data=form, headers={"X-Twilio-Signature": elsewhere}
        )
    forged = await world.post(STATUS_PATH, form, token="not-the-auth-token")
    tampered_form = {**form, "MessageStatus": "delivered"}
    tampered = await httpx.AsyncClient().post(
        world.url + STATUS_PATH,
        data=tampered_form,
        headers={
            "X-Twilio-Signature": twilio_signature(
                world.sms.auth_token, world.url + STATUS_PATH, form
            )
        },
    )
    for answer in (unsigned, other_url, forged, tampered):
        assert answer.status_code == 403
        assert phone not in answer.text
    row = world.row(outbound.attempt_id)
    assert (row.delivery, row.error_code) == ("queued", None)
    assert await heard(case) == ([], [])
    # Signed as Twilio signs it: taken.
    assert (await world.post(STATUS_PATH, form)).status_code == 200
    assert world.row(outbound.attempt_id).delivery == "undelivered"
    _, [news] = await until(lambda: _with_delivery(case))
    assert news.status == DeliveryStatus.UNDELIVERED


async def test_a_reply_reaches_the_case_that_wrote(world: World, patient):
    case = await world.case()
    phone = new_phone()
    outbound = message(patient(phone), case_id=case.id)
    await world.activities.send(outbound)
    ours = world.row(outbound.attempt_id).sender
    sid = world.sms.reply(phone, ours, " 1 ")
    [news], _ = await until(lambda: _with_reply(case))
    assert (news.message_id, news.in_reply_to, news.channel, news.kind, news.body) == (
        sid,
        outbound.attempt_id,
        Medium.SMS,
        ReplyKind.CONFIRM,
        " 1 ",
    )


async def _with_reply(case: WorkflowHandle, count: int = 1):
    replies, deliveries = await heard(case)
    return (replies, deliveries) if len(replies) >= count else None


async def test_two_cases_texting_one_patient_each_get_their_own_replies(world: World, patient):
    phone = new_phone()
    who = patient(phone)
    first, second = await world.case(), await world.case()
    a, b = message(who, case_id=first.id), message(who, case_id=second.id)
    await world.activities.send(a)
    await world.activities.send(b)
    number_a, number_b = world.row(a.attempt_id).sender, world.row(b.attempt_id).sender
    assert number_a != number_b
    world.sms.reply(phone, number_b, "2")
    world.sms.reply(phone, number_a, "Is it on Tuesday?")
    [to_first], _ = await until(lambda: _with_reply(first))
    [to_second], _ = await until(lambda: _with_reply(second))
    assert (to_first.in_reply_to, to_first.kind, to_first.body) == (
        a.attempt_id,
        ReplyKind.OTHER,
        "Is it on Tuesday?",
    )
    assert (to_second.in_reply_to, to_second.kind) == (b.attempt_id, ReplyKind.CALL_BACK)


async def test_stop_then_start_through_the_webhook(world: World, patient):
    case = await world.case()
    phone = new_phone()
    who = patient(phone)
    outbound = message(who, case_id=case.id)
    await world.activities.send(outbound)
    ours = world.row(outbound.attempt_id).sender
    world.sms.reply(phone, ours, "Stop")
    [news], _ = await until(lambda: _with_reply(case))
    assert news.kind == ReplyKind.OPT_OUT
    assert world.consent(phone).opted_out and world.consent(phone).keyword == "STOP"
    # No case texts them now, from any number: nothing goes to Twilio.
    before = len(world.sms.messages())
    other_case = f"referral-{uuid.uuid4().hex[:10]}"
    for attempt in (message(who, case_id=case.id, n=2), message(who, case_id=other_case)):
        assert (await world.activities.send(attempt)).status == SendStatus.OPTED_OUT
    assert len(world.sms.messages()) == before
    # YES while opted out opts back in (Twilio's START keyword too).
    world.sms.reply(phone, ours, "yes")
    replies, _ = await until(lambda: _with_reply(case, 2))
    assert replies[1].kind == ReplyKind.OPT_IN
    assert world.consent(phone).opted_out is False
    assert (
        await world.activities.send(message(who, case_id=case.id, n=3))
    ).status == SendStatus.SENT


async def test_help_is_answered_with_who_writes_and_how_to_stop(world: World, patient):
    case = await world.case()
    phone = new_phone()
    outbound = message(patient(phone), case_id=case.id)
    await world.activities.send(outbound)
    sid = world.sms.reply(phone, world.row(outbound.attempt_id).sender, "HELP")
    [news], _ = await until(lambda: _with_reply(case))
    assert news.kind == ReplyKind.HELP
    [inbound] = [i for i in world.sms.inbound() if i["sid"] == sid]
    webhook = inbound["webhook"]
    assert webhook["answer"] == 200 and webhook["content_type"].startswith("application/xml")
    text = webhook["text"]
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    settings = world.settings
    for words in (
        settings.outreach_sender_name,
        settings.outreach_callback_phone,
        "Reply STOP to opt out",
    ):
        assert words in text
    # Anything else is answered with an empty TwiML response.
    sid = world.sms.reply(phone, world.row(outbound.attempt_id).sender, "thanks")
    await until(lambda: _with_reply(case, 2))
    [inbound] = [i for i in world.sms.inbound() if i["sid"] == sid]
    assert inbound["webhook"]["text"].endswith("<Response/>")


async def test_the_same_text_delivered_twice_is_told_once(world: World, patient):
    case = await world.case()
    phone = new_phone()
    outbound = message(patient(phone), case_id=case.id)
    await world.activities.send(outbound)
    sid = world.sms.reply(phone, world.row(outbound.attempt_id).sender, "1")
    await until(lambda: _with_reply(case))
    [inbound] = [i for i in world.sms.inbound() if i["sid"] == sid]
    again = await world.post(INBOUND_PATH, inbound["params"])
    assert again.status_code == 200
    replies, _ = await heard(case)
    assert len(replies) == 1


async def test_a_text_no_open_case_wrote_is_told_to_nobody_but_stop_holds(world: World, patient):
    phone = new_phone()
    stranger = world.sms.numbers[2]
    sid = world.sms.reply(phone, stranger, "STOP")
    found = await until(
        lambda: [i for i in world.sms.inbound() if i["sid"] == sid and i.get("webhook")]
    )
    assert found[0]["webhook"]["answer"] == 200
    assert world.consent(phone).opted_out


async def test_a_reply_to_a_closed_case_is_answered_200(world: World, patient):
    case = await world.case()
    phone = new_phone()
    outbound = message(patient(phone), case_id=case.id)
    await world.activities.send(outbound)
    await case.terminate("closed for the test")
    sid = world.sms.reply(phone, world.row(outbound.attempt_id).sender, "1")
    found = await until(
        lambda: [i for i in world.sms.inbound() if i["sid"] == sid and i.get("webhook")]
    )
    assert found[0]["webhook"]["answer"] == 200


async def test_the_care_team_reads_what_the_case_sent(world: World, patient):
    case = await world.case()
    who = patient(new_phone())
    sms = message(who, case_id=case.id, body="Please call us to book.")
    await world.activities.send(sms)
    await world.activities.send(message(who, Medium.PORTAL, case_id=case.id, n=2, body="Hello"))
    assert await until(lambda: world.row(sms.attempt_id).delivery == "delivered")

    async def read(case_id: str, user: str, role: Role, team: str | None) -> httpx.Response:
        token = mint_token(world.settings, user=user, role=role, team=team)
        async with httpx.AsyncClient(base_url=world.url) as http:
            return await http.get(
                f"/api/v1/cases/{case_id}/messages", headers={"Authorization": f"Bearer {token}"}
            )

    answer = await read(case.id, "cora", Role.COORDINATOR, "cardiology")
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [(m["attempt_id"], m["channel"], m["status"]) for m in listed] == [
        (sms.attempt_id, "sms", "sent"),
        (f"{case.id}-m2", "portal", "sent"),
    ]
    assert (listed[0]["delivery"], listed[0]["segments"], listed[0]["body"]) == (
        "delivered",
        1,
        "Please call us to book.",
    )
    assert listed[0]["sent_at"] and "address_hash" not in listed[0] and "sender" not in listed[0]
    # Another team's case answers as a case nobody has.
    elsewhere = await read(case.id, "ian", Role.COORDINATOR, "imaging")
    nobody = await read("referral-nobody-has-this", "ian", Role.COORDINATOR, "imaging")
    assert elsewhere.status_code == nobody.status_code == 403
    assert elsewhere.json()["detail"].replace(case.id, "X") == nobody.json()["detail"].replace(
        "referral-nobody-has-this", "X"
    )
    with Session(world.engine) as session:
        viewed = session.exec(select(AccessRow).where(AccessRow.case_id == case.id)).all()
    assert [(row.user_id, row.view) for row in viewed] == [("cora", "messages")]


async def test_a_signed_request_missing_what_twilio_always_sends_is_422(world: World):
    for path, form in (
        (STATUS_PATH, {"AccountSid": world.sms.account_sid, "MessageStatus": "delivered"}),
        (INBOUND_PATH, {"AccountSid": world.sms.account_sid, "Body": "1", "To": "+16175550171"}),
    ):
        answer = await world.post(path, form)
        assert answer.status_code == 422, answer.text
    # A status Twilio may add one day is taken and ignored.
    form = {"AccountSid": world.sms.account_sid, "MessageSid": "SM" + "0" * 32}
    assert (
        await world.post(STATUS_PATH, {**form, "MessageStatus": "teleported"})
    ).status_code == 200


async def test_news_the_case_cannot_take_now_is_503_and_undone(world: World, patient, fhir):
    """Temporal unreachable: the webhook answers 503 and keeps nothing, so the same news
    delivered again (Twilio retries, or the sandbox here) is told then."""
    case = await world.case()
    phone = new_phone()
    quiet = MessagingActivities(
        world.engine, fhir, world.settings.model_copy(update={"public_url": "http://127.0.0.1:9"})
    )
    outbound = message(patient(phone), case_id=case.id)
    sent = await quiet.send(outbound)
    ours = world.row(outbound.attempt_id).sender
    status_form = {
        "AccountSid": world.sms.account_sid,
        "MessageSid": sent.provider_id,
        "MessageStatus": "delivered",
        "From": ours,
        "To": phone,
    }
    inbound_form = {
        "AccountSid": world.sms.account_sid,
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": phone,
        "To": ours,
        "Body": "1",
        "NumMedia": "0",
    }
    gone = await Client.connect(
        "127.0.0.1:9",
        lazy=True,
        retry_config=RetryConfig(max_retries=0),
        data_converter=pydantic_data_converter,
    )
    async with serve_webhooks(gone, world.engine, world.settings) as down:
        async with httpx.AsyncClient() as http:
            for path, form in ((STATUS_PATH, status_form), (INBOUND_PATH, inbound_form)):
                signed = twilio_signature(world.sms.auth_token, down + path, form)
                answer = await http.post(
                    down + path, data=form, headers={"X-Twilio-Signature": signed}
                )
                assert answer.status_code == 503, answer.text
    assert world.row(outbound.attempt_id).delivery == "queued"
    assert await heard(case) == ([], [])
    # Delivered again, to the webhooks that can reach the case: told once each.
    assert (await world.post(STATUS_PATH, status_form)).status_code == 200
    assert (await world.post(INBOUND_PATH, inbound_form)).status_code == 200
    replies, deliveries = await until(lambda: _with_delivery(case))
    assert len(replies) == 1 and len(deliveries) == 1
    assert world.row(outbound.attempt_id).delivery == "delivered"
