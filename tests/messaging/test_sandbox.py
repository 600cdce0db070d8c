"""The SMS sandbox speaks Twilio's Messages API: what the sending activity and the webhooks are
tested against has to be Twilio's protocol, checked here against Twilio's documentation."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.conftest import SmsSandbox, eventually

from .kit import twilio_signature
from .receiver import form_receiver

PATIENT = "+16175550140"


def send(
    sandbox: SmsSandbox, auth: tuple[str, str] | None = None, account: str | None = None, **form
):
    account = account or sandbox.account_sid
    return httpx.post(
        f"{sandbox.base_url}/2010-04-01/Accounts/{account}/Messages.json",
        data=form,
        auth=auth or (sandbox.account_sid, sandbox.auth_token),
    )


def test_the_signature_algorithm_matches_twilios_documented_examples():
    # Twilio's security documentation and twilio-python's tests: auth token 12345.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    newer = {**params, "Caller": "+12349013030", "From": "+12349013030"}
    assert twilio_signature("12345", url, newer) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_a_send_is_answered_with_twilios_message_resource(sms_sandbox: SmsSandbox):
    answer = send(sms_sandbox, To=PATIENT, From=sms_sandbox.numbers[0], Body="Hello from clinic")
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["status"] == "queued"
    assert message["num_segments"] == "1" and message["num_media"] == "0"
    assert (message["to"], message["from"], message["body"]) == (
        PATIENT,
        sms_sandbox.numbers[0],
        "Hello from clinic",
    )
    assert message["error_code"] is None and message["direction"] == "outbound-api"
    assert message["account_sid"] == sms_sandbox.account_sid
    assert parsedate_to_datetime(message["date_created"]).tzinfo is not None  # RFC 2822
    assert message["uri"] == (
        f"/2010-04-01/Accounts/{sms_sandbox.account_sid}/Messages/{message['sid']}.json"
    )
    read = httpx.get(
        f"{sms_sandbox.base_url}{message['uri']}",
        auth=(sms_sandbox.account_sid, sms_sandbox.auth_token),
    )
    assert read.status_code == 200 and read.json()["sid"] == message["sid"]
    # 161 GSM characters take two segments; 71 UCS-2 ones too.
    assert (
        send(sms_sandbox, To=PATIENT, From=sms_sandbox.numbers[0], Body="x" * 161).json()[
            "num_segments"
        ]
        == "2"
    )
    assert (
        send(sms_sandbox, To=PATIENT, From=sms_sandbox.numbers[0], Body="é" + "ж" * 70).json()[
            "num_segments"
        ]
        == "2"
    )


@pytest.mark.parametrize(
    ("auth", "account"),
    [(("AC" + "0" * 32, "nope"), None), (None, "AC" + "1" * 32), (("", ""), None)],
    ids=["wrong credentials", "another account's URL", "no credentials"],
)
def test_authentication_is_twilios(sms_sandbox: SmsSandbox, auth, account):
    answer = send(sms_sandbox, auth, account, To=PATIENT, From=sms_sandbox.numbers[0], Body="x")
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("to", "sender", "code"),
    [
        ("12", None, 21211),
        ("+1617555", None, 21211),
        (PATIENT, "+16175550999", 21606),  # a valid number, not ours
        (PATIENT, "clinic!", 21212),
    ],
)
def test_errors_are_twilios(sms_sandbox: SmsSandbox, to, sender, code):
    answer = send(sms_sandbox, To=to, From=sender or sms_sandbox.numbers[0], Body="x")
    assert answer.status_code == 400
    error = answer.json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_status_callbacks_are_signed_as_twilio_signs(sms_sandbox: SmsSandbox):
    with form_receiver() as receiver:
        callback = f"{receiver.url}/status?tenant=a"
        sent = send(
            sms_sandbox, To=PATIENT, From=sms_sandbox.numbers[1], Body="hi", StatusCallback=callback
        ).json()
        assert eventually(lambda: len(receiver.posted) == 3, timeout=15)
    statuses = [post.form["MessageStatus"] for post in receiver.posted]
    assert statuses == ["queued", "sent", "delivered"]
    for post in receiver.posted:
        assert post.path == "/status?tenant=a"
        assert post.form["MessageSid"] == sent["sid"]
        assert post.form["AccountSid"] == sms_sandbox.account_sid
        assert (post.form["From"], post.form["To"]) == (sms_sandbox.numbers[1], PATIENT)
        assert "ErrorCode" not in post.form
        expected = twilio_signature(sms_sandbox.auth_token, callback, post.form)
        assert post.headers["X-Twilio-Signature"] == expected
        assert twilio_signature("another token", callback, post.form) != expected


def test_an_unreachable_number_ends_undelivered_30003(sms_sandbox: SmsSandbox):
    number = "+16175550144"
    sms_sandbox.unreachable(number)
    with form_receiver() as receiver:
        send(
            sms_sandbox,
            To=number,
            From=sms_sandbox.numbers[0],
            Body="hi",
            StatusCallback=receiver.url,
        )
        assert eventually(lambda: len(receiver.posted) == 3, timeout=15)
    last = receiver.posted[-1].form
    assert (last["MessageStatus"], last["ErrorCode"]) == ("undelivered", "30003")


def test_stop_opts_out_of_that_sender_and_start_opts_back_in(sms_sandbox: SmsSandbox):
    patient, ours, other = "+16175550145", sms_sandbox.numbers[0], sms_sandbox.numbers[1]
    with form_receiver() as receiver:
        sms_sandbox.set_inbound_url(f"{receiver.url}/inbound")
        try:
            sms_sandbox.reply(patient, ours, " stop ")
            assert eventually(lambda: len(receiver.posted) == 1, timeout=15)
            refused = send(sms_sandbox, To=patient, From=ours, Body="hi")
            assert refused.status_code == 400 and refused.json()["code"] == 21610
            assert send(sms_sandbox, To=patient, From=other, Body="hi").status_code == 201
            sms_sandbox.reply(patient, ours, "START")
            sms_sandbox.reply(patient, ours, "help")
            sms_sandbox.reply(patient, ours, "stop please")  # not a keyword: a sentence
            assert eventually(lambda: len(receiver.posted) == 4, timeout=15)
        finally:
            sms_sandbox.set_inbound_url(None)
    assert send(sms_sandbox, To=patient, From=ours, Body="hi").status_code == 201
    inbound = [post.form for post in receiver.posted]
    # Texts sent together may arrive in any order, as with Twilio.
    assert {form["Body"]: form.get("OptOutType") for form in inbound} == {
        " stop ": "STOP",
        "START": "START",
        "help": "HELP",
        "stop please": None,
    }
    url = f"{receiver.url}/inbound"
    for post in receiver.posted:
        form = post.form
        assert post.headers["X-Twilio-Signature"] == twilio_signature(
            sms_sandbox.auth_token, url, form
        )
        assert (form["From"], form["To"], form["NumMedia"]) == (patient, ours, "0")
        assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
        assert form["AccountSid"] == sms_sandbox.account_sid
