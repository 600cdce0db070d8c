"""An EHR's refusal keeps its codes and a scrubbed diagnostic; the patient's details stay behind."""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.fhir.client import MAX_MESSAGE, FhirClient
from activities.fhir.outcome import diagnostic, scrub

TELLING = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "business-rule",
            "details": {
                "coding": [{"system": "urn:ehr", "code": "NO_COVERAGE"}],
                "text": "Patient Zebulon Quixtable (MRN 88231-X, born 1961-04-09, phone "
                "617-555-0142, z.quix@example.org) has 'no active coverage plan' for "
                "Appointment/ap-7",
            },
            "expression": ["Appointment.participant[0].actor"],
        }
    ],
}
IDENTIFYING = ["Zebulon", "Quixtable", "88231", "1961", "555-0142", "quix", "coverage plan"]


async def test_a_refusal_carries_codes_and_a_scrubbed_diagnostic_only():
    ehr = FhirClient(
        "http://ehr.test/fhir/R4",
        transport=httpx.MockTransport(lambda request: httpx.Response(422, json=TELLING)),
    )

    with pytest.raises(ApplicationError) as refused:
        await ehr.read("Appointment", "ap-7")

    message = refused.value.message
    assert message.startswith("EHR refused GET Appointment (HTTP 422): business-rule, NO_COVERAGE")
    assert "Appointment.participant[0].actor" in message and "Appointment/ap-7" in message
    assert not [word for word in IDENTIFYING if word in message]
    assert len(message) <= MAX_MESSAGE
    assert refused.value.non_retryable


def test_plain_diagnostics_read_as_they_were():
    said = "Appointment access is not granted to this client"
    assert scrub(said) == said
    assert (
        diagnostic(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "code": "required",
                        "diagnostics": "Missing required element",
                        "expression": ["ServiceRequest.intent"],
                    }
                ],
            }
        )
        == "ServiceRequest.intent: Missing required element"
    )


def test_a_long_diagnostic_is_capped():
    long = {
        "resourceType": "OperationOutcome",
        "issue": [{"code": "invalid", "diagnostics": "invalid value " * 50}],
    }
    assert len(diagnostic(long)) == 160
