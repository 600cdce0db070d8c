"""What the referral texts its patient: one segment with the longest values allowed, the way to
opt out last, nothing about the service, English when there is no translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.care.messaging import Cadence, Medium, Touch, segments
from workflows.referral import messages
from workflows.referral.messages import LANGUAGES, PHONE_MAX, REMINDER, SCHEDULE, SENDER_MAX, render

LONGEST = {"sender": "W" * SENDER_MAX, "phone": "+1 (555) 010-0100"}
# The longest day and time each language writes: "Wed Sep 30" / "30/09", "12:30 PM" / "12:30".
LATE_SEPTEMBER = datetime(2027, 9, 30, 16, 30, tzinfo=UTC)  # 12:30 in New York (EDT)
NOT_GSM_BASIC = set("^{}\\[~]|€`áíóúÁÍÓÚ")  # two septets each, or outside GSM-7 altogether
OPT_OUT = {"en": "Reply STOP to opt out", "es": ("Responda STOP para no recibir", "STOP para no")}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [SCHEDULE, REMINDER])
def test_every_text_is_one_segment_with_the_longest_values(kind: str, language: str):
    assert len(LONGEST["phone"]) == PHONE_MAX
    text = render(kind, language, Medium.SMS, appointment_at=LATE_SEPTEMBER, **LONGEST).body
    assert len(text) <= 160 and not NOT_GSM_BASIC & set(text)  # GSM-7: 160 in one segment
    assert segments(text) == 1
    last = text.split(". ")[-1]  # the last sentence says how to opt out
    assert last.startswith(OPT_OUT[language]) and last.endswith(".")


@pytest.mark.parametrize("channel", [Medium.SMS, Medium.EMAIL, Medium.PORTAL])
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_service_specialty_or_test_is_named(channel: Medium, language: str):
    for kind in (SCHEDULE, REMINDER):
        message = render(kind, language, channel, appointment_at=LATE_SEPTEMBER, **LONGEST)
        words = f"{message.subject or ''} {message.body}".lower()
        for word in ("cardio", "consult", "referral", "imaging", "lab", "diagnos", "result"):
            assert word not in words


def test_the_reminder_reads_the_visit_in_the_clinics_time_zone():
    visit = datetime(2027, 3, 15, 18, 30, tzinfo=UTC)  # after the DST change: 14:30 EDT
    english = render(
        REMINDER, "en", Medium.SMS, sender="Clinic", phone="555-0100", appointment_at=visit
    )
    assert "your visit on Mon Mar 15 at 2:30 PM." in english.body
    assert english.body.endswith("Reply 1 to confirm, 2 to talk to us. Reply STOP to opt out.")
    spanish = render(
        REMINDER, "es", Medium.SMS, sender="Clinic", phone="555-0100", appointment_at=visit
    )
    assert "su cita el 15/03 a las 14:30." in spanish.body


def test_a_language_without_templates_gets_english():
    french = render(SCHEDULE, "fr", Medium.SMS, sender="Clinic", phone="555-0100")
    assert french == render(SCHEDULE, "en", Medium.SMS, sender="Clinic", phone="555-0100")
    mail = render(SCHEDULE, "es", Medium.EMAIL, sender="Clinic", phone="555-0100")
    assert mail.subject == "Por favor, programe su cita (Clinic)" and "555-0100" in mail.body


def test_a_touch_falls_back_to_the_channels_after_its_own():
    cadence = Cadence(touches=[Touch(after=timedelta(0), channel=Medium.SMS)])
    sms, email, portal, call = Medium.SMS, Medium.EMAIL, Medium.PORTAL, Medium.CALL
    assert cadence.channels_for(Touch(after=timedelta(0), channel=sms)) == [
        sms,
        email,
        portal,
        call,
    ]
    assert cadence.channels_for(Touch(after=timedelta(0), channel=email)) == [email, portal, call]
    reminder = Cadence(touches=cadence.touches, fallback=[sms, email])
    assert reminder.channels_for(Touch(after=timedelta(0), channel=portal)) == [portal, sms, email]


def test_the_templates_cover_every_kind_and_language_on_every_channel():
    for kind in (SCHEDULE, REMINDER):
        for language in LANGUAGES:
            assert (kind, language) in messages.SMS
            assert (kind, language) in messages.SUBJECTS and (kind, language) in messages.LETTERS
