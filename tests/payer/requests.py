"""PAS request Bundles written out by hand, as the IG's examples are: the sandbox's tests do not
build them with the code under test in activities/payer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
CASE = "urn:followthrough:case"
EHR = "http://ehr.example.org/fhir"


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def certification(code: str) -> dict[str, Any]:
    return {
        "url": f"{PAS}/extension-certificationType",
        "valueCodeableConcept": concept("https://codesystem.x12.org/005010/1322", code),
    }


def resources() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Synthetic"}]},
        {
            "resourceType": "Coverage",
            "id": "cov-1",
            "status": "active",
            "beneficiary": {"reference": "Patient/pat-1"},
            "payor": [{"reference": "Organization/payer-1"}],
        },
        {"resourceType": "Organization", "id": "payer-1", "name": "Sandbox Health Plan"},
        {"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Clinician"}]},
    ]


def claim(
    identifier: str, services: list[str], serviced: str | None = None, sender: str = "tests"
) -> dict[str, Any]:
    """A PAS Claim from the sending system `sender` (what subscriptions filter on)."""
    return {
        "resourceType": "Claim",
        "id": uuid.uuid4().hex,
        "extension": [
            {
                "url": f"{PAS}/extension-TransmissionIdentifiers",
                "extension": [
                    {"url": "applicationSenderCode", "valueString": sender},
                    {"url": "applicationReceiverCode", "valueString": "payer-1"},
                ],
            }
        ],
        "identifier": [{"system": CASE, "value": identifier}],
        "status": "active",
        "type": concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "preauthorization",
        "patient": {"reference": "Patient/pat-1"},
        "created": datetime.now(UTC).isoformat(),
        "insurer": {"reference": "Organization/payer-1"},
        "provider": {"reference": "Practitioner/prac-1"},
        "priority": concept("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}],
        "item": [
            {
                "extension": [
                    {
                        "url": f"{PAS}/extension-serviceItemRequestType",
                        "valueCodeableConcept": concept(
                            "https://codesystem.x12.org/005010/1525", "HS"
                        ),
                    },
                    certification("I"),
                ],
                "sequence": n,
                "category": concept("https://codesystem.x12.org/005010/1365", "1"),
                "productOrService": concept("http://www.ama-assn.org/go/cpt", code),
                **({"servicedDate": serviced} if serviced else {}),
            }
            for n, code in enumerate(services, start=1)
        ],
    }


def bundle(*claims: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entries = [{"fullUrl": f"urn:uuid:{c['id']}", "resource": c} for c in claims]
    entries += [
        {"fullUrl": f"{EHR}/{r['resourceType']}/{r['id']}", "resource": r}
        for r in resources() + (extra or [])
    ]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:example:transaction", "value": uuid.uuid4().hex},
        "type": "collection",
        "timestamp": datetime.now(UTC).isoformat(),
        "entry": entries,
    }


def cancel(original: dict[str, Any]) -> dict[str, Any]:
    """A PAS Claim Update cancelling `original`: certificationType 3, related to it."""
    update = claim(original["identifier"][0]["value"] + "-cancel", [])
    update["item"] = [{**item, "extension": [certification("3")]} for item in original["item"]]
    update["extension"] = [certification("3")]
    update["related"] = [
        {
            "claim": {"reference": f"urn:uuid:{original['id']}"},
            "relationship": concept(
                "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "prior"
            ),
        }
    ]
    return bundle(update, original)


def new_identifier() -> str:
    return f"case-{uuid.uuid4().hex[:10]}-1"
