"""send_message and release_conversations against the real EHR sandbox, SMS sandbox and SMTP
server: each channel, once-only per attempt, consent, unreachable addresses, sender numbers."""

from __future__ import annotations

import socket

import pytest
from sqlmodel import Session, select
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError

from activities.messaging import portal, records
from activities.messaging.addresses import address_hash
from activities.messaging.send import STATUS_PATH, MessagingActivities
from activities.messaging.tables import ConsentRecord, OutboundRecord
from workers.mail_sandbox import MailSandbox
from workflows.care.messaging import Medium, SendStatus

from .conftest import message, messaging_settings, new_phone


def sent_to(sms_sandbox, number: str) -> list[dict]:
    return [m for m in sms_sandbox.messages() if m["to"] == number]


async def test_an_sms_goes_to_the_patients_mobile_through_twilio(sender, patient, sms_sandbox):
    phone = new_phone()
    who = patient(phone)
    outbound = message(who, body="Hello from your care team")
    with capture_logs() as logs:
        result = await sender().send(outbound)
    assert result.status == SendStatus.SENT and result.segments == 1
    [sent] = sent_to(sms_sandbox, phone)
    assert result.provider_id == sent["sid"]
    assert sent["from"] in sms_sandbox.numbers and sent["body"] == "Hello from your care team"
    assert sent["status_callback"] == "http://127.0.0.1:9" + STATUS_PATH
    # The number is PHI: not in the result, not in any log line.
    assert phone not in result.model_dump_json() and phone[2:] not in str(logs)
    assert "Hello" not in str(logs)


async def test_a_phone_written_the_us_way_is_sent_as_e164(sender, patient, sms_sandbox):
    phone = new_phone()
    local = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"
    result = await sender().send(message(patient(local)))
    assert result.status == SendStatus.SENT
    assert len(sent_to(sms_sandbox, phone)) == 1


async def test_the_same_attempt_twice_sends_once(sender, patient, sms_sandbox):
    phone = new_phone()
    outbound = message(patient(phone))
    activities = sender()
    first = await activities.send(outbound)
    again = await activities.send(outbound)
    assert again == first
    assert len(sent_to(sms_sandbox, phone)) == 1


async def test_a_twilio_opt_out_is_recorded_and_holds_for_every_case(
    sender, patient, sms_sandbox, engine
):
    phone = new_phone()
    who = patient(phone)
    activities = sender()
    # The patient texted STOP to every number (the webhook was not listening).
    for number in sms_sandbox.numbers:
        sms_sandbox.reply(phone, number, "STOP")
    result = await activities.send(message(who))
    assert (result.status, result.error_code) == (SendStatus.OPTED_OUT, "21610")
    key = activities.settings.messaging_address_key
    with Session(engine) as session:
        consent = session.get(ConsentRecord, (address_hash(key, Medium.SMS, phone), "sms"))
    assert consent is not None and consent.opted_out and consent.keyword == "21610"
    # Another case asks: not sent to Twilio at all.
    before = len(sms_sandbox.messages())
    other = await activities.send(message(who))
    assert other.status == SendStatus.OPTED_OUT and other.error_code is None
    assert len(sms_sandbox.messages()) == before
    assert sent_to(sms_sandbox, phone) == []


async def test_an_invalid_number_is_unreachable(sender, patient, sms_sandbox):
    result = await sender().send(message(patient("12")))
    assert (result.status, result.error_code) == (SendStatus.UNREACHABLE, "21211")


async def test_no_address_or_no_provider_is_no_address(sender, patient, engine):
    activities = sender()
    nobody = patient()  # no telecom
    home_only = patient(new_phone(), phone_use="home")  # not a mobile: no texts
    for who, channel in ((nobody, Medium.SMS), (nobody, Medium.EMAIL), (home_only, Medium.SMS)):
        result = await activities.send(message(who, channel))
        assert result.status == SendStatus.NO_ADDRESS
    unconfigured = sender(twilio_account_sid="", smtp_host="")
    assert unconfigured.twilio is None and unconfigured.mailer is None
    both = patient(new_phone(), "pat@example.org")
    for channel in (Medium.SMS, Medium.EMAIL):
        assert (await unconfigured.send(message(both, channel))).status == SendStatus.NO_ADDRESS
    missing = await activities.send(message("Patient/pat-nobody-has-this"))
    assert missing.status == SendStatus.NO_ADDRESS


async def test_a_twilio_outage_is_retried_and_then_sent_once(sender, patient, sms_sandbox):
    phone = new_phone()
    outbound = message(patient(phone))
    down = sender(twilio_base_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ApplicationError) as failed:
        await down.send(outbound)
    assert not failed.value.non_retryable and phone not in str(failed.value)
    # The retry (here with Twilio back) sends it.
    assert (await sender().send(outbound)).status == SendStatus.SENT
    assert len(sent_to(sms_sandbox, phone)) == 1


async def test_a_wrong_sender_number_is_a_final_failure(sender, patient):
    activities = sender(twilio_from_numbers=["+16175550999"])  # not the account's
    with pytest.raises(ApplicationError) as failed:
        await activities.send(message(patient(new_phone())))
    assert failed.value.non_retryable and failed.value.type == "SmsRejected"
    assert "21606" in str(failed.value)


async def test_each_open_case_of_a_patient_gets_its_own_number(sender, patient, sms_sandbox):
    phone = new_phone()
    who = patient(phone)
    activities = sender()
    cases = [f"referral-busy{n}-{phone[-4:]}" for n in range(4)]
    results = [await activities.send(message(who, case_id=case)) for case in cases]
    assert [r.status for r in results] == [SendStatus.SENT] * 3 + [SendStatus.BUSY]
    senders = [m["from"] for m in sent_to(sms_sandbox, phone)]
    assert sorted(senders) == sorted(sms_sandbox.numbers)
    # A case writes again from its own number.
    await activities.send(message(who, case_id=cases[1], n=2))
    assert sent_to(sms_sandbox, phone)[-1]["from"] == senders[1]
    # The second case closes: its number goes to the fourth.
    await activities.release(cases[1])
    assert (await activities.send(message(who, case_id=cases[3], n=2))).status == SendStatus.SENT
    assert sent_to(sms_sandbox, phone)[-1]["from"] == senders[1]


async def test_email_goes_over_starttls_to_the_patients_address(
    sender, patient, mail_sandbox: MailSandbox
):
    who = patient(email="Pat.Synthetic@example.org")
    outbound = message(who, Medium.EMAIL, body="Please call us to book your visit.")
    result = await sender().send(outbound)
    assert result.status == SendStatus.SENT
    [received] = [
        m for m in mail_sandbox.messages() if m.message["Message-ID"].strip() == result.provider_id
    ]
    assert received.tls  # STARTTLS, verified against the sandbox's own certificate
    assert received.rcpt_tos == ["Pat.Synthetic@example.org"]
    assert received.message["Subject"] == "Your referral"
    assert received.message.get_content().strip() == "Please call us to book your visit."
    assert outbound.attempt_id in result.provider_id
    # Again: answered from the attempt, not sent twice.
    assert await sender().send(outbound) == result
    assert (
        len(
            [
                m
                for m in mail_sandbox.messages()
                if m.message["Message-ID"].strip() == result.provider_id
            ]
        )
        == 1
    )


async def test_email_without_trusting_the_servers_certificate_is_not_sent(
    sender, patient, mail_sandbox: MailSandbox
):
    untrusting = sender(smtp_ca_file=None)
    before = len(mail_sandbox.messages())
    with pytest.raises(ApplicationError) as failed:
        await untrusting.send(message(patient(email="pat@example.org"), Medium.EMAIL))
    assert failed.value.type == "MailUnavailable"
    assert len(mail_sandbox.messages()) == before


async def test_email_in_plain_text_is_refused_by_a_server_that_requires_starttls(
    sender, patient, mail_sandbox: MailSandbox
):
    plain = sender(smtp_security="none")
    with pytest.raises(ApplicationError) as failed:
        await plain.send(message(patient(email="pat@example.org"), Medium.EMAIL))
    assert failed.value.non_retryable and "530" in str(failed.value)


async def test_the_portal_outbox_always_takes_the_message(engine, fhir, patient):
    activities = MessagingActivities(engine, fhir, messaging_settings())
    assert activities.twilio is None and activities.mailer is None
    who = patient()
    outbound = message(who, Medium.PORTAL, body="Your referral is ready to book.")
    result = await activities.send(outbound)
    assert result.status == SendStatus.SENT and result.provider_id.startswith("portal:")
    assert await activities.send(outbound) == result
    [posted] = portal.outbox(engine, who)
    assert (posted.attempt_id, posted.body, posted.subject) == (
        outbound.attempt_id,
        "Your referral is ready to book.",
        "Your referral",
    )
    with Session(engine) as session:
        [row] = session.exec(
            select(OutboundRecord).where(OutboundRecord.attempt_id == outbound.attempt_id)
        ).all()
    assert (row.status, row.channel, row.address_hash) == ("sent", "portal", None)


async def test_no_address_is_stored_only_its_keyed_hash(sender, patient, engine):
    phone = new_phone()
    activities = sender()
    await activities.send(message(patient(phone)))
    with Session(engine) as session:
        rows = session.exec(select(OutboundRecord)).all()
    stored = str([row.model_dump() for row in rows])
    assert phone not in stored and phone[2:] not in stored
    hashed = address_hash(activities.settings.messaging_address_key, Medium.SMS, phone)
    assert hashed in stored
    assert address_hash("another key", Medium.SMS, phone) != hashed


async def test_a_portal_post_interrupted_after_its_claim_is_finished_by_the_retry(
    engine, fhir, patient
):
    activities = MessagingActivities(engine, fhir, messaging_settings())
    who = patient()
    outbound = message(who, Medium.PORTAL)
    assert records.claim(engine, outbound) is not None  # the worker died right after this
    result = await activities.send(outbound)
    assert result.status == SendStatus.SENT and result.error_code is None
    assert [posted.attempt_id for posted in portal.outbox(engine, who)] == [outbound.attempt_id]


async def test_a_send_whose_answer_was_lost_is_never_sent_again(sender, patient, sms_sandbox):
    """Twilio has no idempotency key: when the request went out and no answer came back, the
    message may have gone, so the retry answers "sent, unconfirmed" instead of texting twice."""
    listener = socket.create_server(("127.0.0.1", 0))  # takes the request, never answers
    try:
        silent = sender(
            twilio_base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            twilio_timeout_seconds=0.5,
        )
        phone = new_phone()
        outbound = message(patient(phone))
        with pytest.raises(ApplicationError) as failed:
            await silent.send(outbound)
        assert failed.value.type == "SmsUnconfirmed" and not failed.value.non_retryable
    finally:
        listener.close()
    retried = await sender().send(outbound)
    assert (retried.status, retried.error_code, retried.provider_id) == (
        SendStatus.SENT,
        "unconfirmed",
        None,
    )
    assert sent_to(sms_sandbox, phone) == []
