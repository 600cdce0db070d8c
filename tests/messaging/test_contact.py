"""patient_contact reads the EHR sandbox's Patients: channels, time zone, language, no address."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.fhir.contact import TZ_EXTENSION, ContactActivities

from .conftest import messaging_settings, new_phone


@pytest.fixture
def contact(fhir, sms_sandbox, mail_sandbox) -> ContactActivities:
    return ContactActivities(fhir, messaging_settings(sms_sandbox, mail_sandbox))


def tz(zone: str) -> dict:
    return {"extension": [{"url": TZ_EXTENSION, "valueCode": zone}]}


def spoken(*languages: tuple[str, bool]) -> dict:
    return {
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]}, "preferred": p}
            for code, p in languages
        ]
    }


async def test_channels_are_those_configured_with_an_address_on_file(contact, patient):
    phone, mail = new_phone(), "pat@example.org"
    both = await contact.patient_contact(patient(phone, mail))
    assert (both.sms, both.email, both.portal) == (True, True, True)
    neither = await contact.patient_contact(patient())
    assert (neither.sms, neither.email, neither.portal) == (False, False, True)
    landline = await contact.patient_contact(patient(new_phone(), phone_use="home"))
    assert landline.sms is False
    # No address in what the case gets.
    assert phone not in both.model_dump_json() and mail not in both.model_dump_json()
    unconfigured = ContactActivities(contact.fhir, messaging_settings())
    nothing = await unconfigured.patient_contact(patient(phone, mail))
    assert (nothing.sms, nothing.email, nothing.portal) == (False, False, True)


async def test_the_time_zone_comes_from_the_record_then_the_state_then_the_clinic(contact, patient):
    on_patient = await contact.patient_contact(
        patient(**tz("America/Denver"), address=[{"state": "NY"}])
    )
    assert on_patient.timezone == "America/Denver"
    on_address = await contact.patient_contact(
        patient(address=[{"state": "NY", **tz("America/Phoenix")}])
    )
    assert on_address.timezone == "America/Phoenix"
    by_state = await contact.patient_contact(patient(address=[{"state": "ca"}]))
    assert by_state.timezone == "America/Los_Angeles"
    moved = await contact.patient_contact(
        patient(address=[{"state": "HI", "use": "old"}, {"state": "TX"}])
    )
    assert moved.timezone == "America/Chicago"
    unknown = await contact.patient_contact(patient(address=[{"country": "CA"}]))
    assert unknown.timezone == contact.settings.clinic_timezone == "America/New_York"
    bogus = await contact.patient_contact(patient(**tz("Mars/Olympus_Mons")))
    assert bogus.timezone == "America/New_York"


async def test_the_preferred_language(contact, patient):
    assert (
        await contact.patient_contact(patient(**spoken(("en", False), ("es-MX", True))))
    ).language == "es"
    assert (await contact.patient_contact(patient(**spoken(("vi", False))))).language == "vi"
    assert (await contact.patient_contact(patient())).language == "en"


async def test_an_unknown_patient_is_a_final_failure(contact):
    with pytest.raises(ApplicationError) as failed:
        await contact.patient_contact("Patient/pat-nobody-has-this")
    assert failed.value.non_retryable
