"""How a patient can be reached, read from the EHR Patient: which channels (a configured provider
and an address on file), the patient's time zone for quiet hours, and the preferred language.
Never the addresses themselves: they stay in the EHR until a message is sent."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.fhir.failures import NOT_FOUND
from activities.messaging.addresses import patient_address
from workers.settings import Settings
from workflows.care.messaging import Medium, PatientContact

log = structlog.get_logger(__name__)

TZ_EXTENSION = "http://hl7.org/fhir/StructureDefinition/tz-code"
_ZONES = available_timezones()

# Each state's (and territory's) most populous time zone, for a patient whose record names no
# zone: a few states span two, and quiet hours are then kept by the larger part's clock.
STATE_ZONES = {
    **dict.fromkeys(
        "CT DE DC FL GA IN KY ME MD MA MI NH NJ NY NC OH PA RI SC VT VA WV".split(),
        "America/New_York",
    ),
    **dict.fromkeys("AL AR IL IA KS LA MN MS MO NE ND OK SD TN TX WI".split(), "America/Chicago"),
    **dict.fromkeys("CO ID MT NM UT WY".split(), "America/Denver"),
    "AZ": "America/Phoenix",
    **dict.fromkeys("CA NV OR WA".split(), "America/Los_Angeles"),
    "AK": "America/Anchorage",
    "HI": "Pacific/Honolulu",
    "PR": "America/Puerto_Rico",
    "VI": "America/St_Thomas",
    "GU": "Pacific/Guam",
    "MP": "Pacific/Saipan",
    "AS": "Pacific/Pago_Pago",
}


def _tz_code(element: dict[str, Any]) -> str | None:
    for extension in element.get("extension") or []:
        if extension.get("url") == TZ_EXTENSION and extension.get("valueCode") in _ZONES:
            return extension["valueCode"]
    return None


def timezone_of(patient: dict[str, Any], default: str) -> str:
    """The tz-code extension on the Patient or on its (current) address, else the address's US
    state's zone, else `default` (the clinic's)."""
    addresses = [
        a
        for a in patient.get("address") or []
        if a.get("use") != "old" and not (a.get("period") or {}).get("end")
    ]
    for element in (patient, *addresses):
        if zone := _tz_code(element):
            return zone
    for address in addresses:
        if zone := STATE_ZONES.get((address.get("state") or "").strip().upper()):
            return zone
    return default


def language_of(patient: dict[str, Any]) -> str:
    """The BCP-47 primary tag of the communication marked preferred (else the only one), or en."""
    spoken = patient.get("communication") or []
    chosen = next(
        (c for c in spoken if c.get("preferred")), spoken[0] if len(spoken) == 1 else None
    )
    for coding in ((chosen or {}).get("language") or {}).get("coding") or []:
        if coding.get("code"):
            return coding["code"].split("-")[0].lower()
    return "en"


class ContactActivities:
    def __init__(self, fhir: FhirClient, settings: Settings) -> None:
        self.fhir, self.settings = fhir, settings

    @activity.defn(name="patient_contact")
    async def patient_contact(self, patient: str) -> PatientContact:
        resource = await self.fhir.read_if_exists(patient)
        if resource is None:
            raise ApplicationError(f"The EHR has no {patient}", type=NOT_FOUND, non_retryable=True)
        settings = self.settings
        sms_ready = bool(settings.twilio_account_sid and settings.twilio_from_numbers)
        contact = PatientContact(
            patient=patient,
            sms=sms_ready and patient_address(resource, Medium.SMS) is not None,
            email=bool(settings.smtp_host) and patient_address(resource, Medium.EMAIL) is not None,
            portal=True,
            timezone=timezone_of(resource, settings.clinic_timezone),
            language=language_of(resource),
        )
        log.info("patient_contact_read", patient=patient, sms=contact.sms, email=contact.email)
        return contact
