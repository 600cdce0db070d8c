"""Each message a case sent (or could not send) to its patient, recorded in the EHR as a FHIR R4
Communication, so the chart shows what the patient was told, when and how.

Written once per attempt: a conditional create on the attempt's identifier, so an activity retried
after its answer was lost finds the Communication it wrote instead of writing a second one.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import structlog
from fhir.resources.R4B.communication import Communication
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.fhir.failures import INVALID_RESOURCE, unavailable
from workflows.care.messaging import CommunicationRecord, Medium

log = structlog.get_logger(__name__)

ATTEMPT_SYSTEM = "urn:followthrough:outreach-attempt"
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
# How each channel reaches the patient, in v3-ParticipationMode: email and the portal have codes
# of their own (EMAILWRIT, ONLINEWRIT); the code system has none for a text message, so SMS is
# the parent WRITTEN with the channel named in the text. A call is a person's work: never here.
MEDIUM = {
    Medium.SMS: ("WRITTEN", "written", "SMS text message"),
    Medium.EMAIL: ("EMAILWRIT", "email", "Email"),
    Medium.PORTAL: ("ONLINEWRIT", "online written", "Patient portal message"),
    Medium.CALL: ("PHONE", "telephone", "Telephone call"),
}


def communication(record: CommunicationRecord) -> dict[str, Any]:
    """The Communication for one attempt, validated as FHIR R4 (R4B models)."""
    code, display, text = MEDIUM[record.channel]
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "identifier": [{"system": ATTEMPT_SYSTEM, "value": record.attempt_id}],
        "status": record.status,
        "category": [{"coding": [{"system": CATEGORY, "code": "notification"}]}],
        "medium": [
            {
                "coding": [{"system": PARTICIPATION_MODE, "code": code, "display": display}],
                "text": text,
            }
        ],
        "subject": {"reference": record.patient},
        "recipient": [{"reference": record.patient}],
        "basedOn": [{"reference": record.order}],
        "payload": [{"contentString": record.text}],
    }
    if record.status_reason:
        resource["statusReason"] = {"text": record.status_reason}
    if record.sent:
        # FHIR wants an offset with a time; a provider's time without one is UTC.
        sent = record.sent if record.sent.tzinfo else record.sent.replace(tzinfo=UTC)
        resource["sent"] = sent.isoformat()
    try:
        Communication.model_validate(resource)
    except ValidationError as err:
        # Retrying would build the same resource: say what is wrong (not the message itself).
        fields = sorted({".".join(map(str, e["loc"])) for e in err.errors()})
        raise ApplicationError(
            f"Not a valid FHIR Communication: {', '.join(fields)}",
            type=INVALID_RESOURCE,
            non_retryable=True,
        ) from None
    return resource


class CommunicationActivities:
    def __init__(self, fhir: FhirClient) -> None:
        self.fhir = fhir

    @activity.defn(name="record_communication")
    async def record(self, record: CommunicationRecord) -> str:
        """Write the attempt's Communication once; answers its reference ("Communication/…")."""
        search = f"identifier={ATTEMPT_SYSTEM}|{record.attempt_id}"
        try:
            found, created = await self.fhir.create_unless_exists(communication(record), search)
        except ApplicationError as err:
            log.warning("communication_not_written", attempt=record.attempt_id, error=err.type)
            raise
        if found is None:
            matches = await self.fhir.search(
                "Communication", {"identifier": f"{ATTEMPT_SYSTEM}|{record.attempt_id}"}
            )
            if not matches:
                raise unavailable("The EHR answered a Communication create without it; retrying")
            found = matches[0]
        log.info("communication_written", attempt=record.attempt_id, created=created)
        return f"Communication/{found['id']}"
