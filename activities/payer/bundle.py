"""The PAS request Bundle: the Claim first, then every resource it references, each once.

Pure functions over resources already read from the EHR (pas.py reads them). The Claim's
identifier names the case and the submission (`<case_id>-<n>`, system urn:followthrough:case),
so a response, however it arrives, says which case it is for.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from activities.fhir.task import CASE_SYSTEM
from activities.payer import codes
from activities.payer.models import PasInquiry, PasRequest

SENDER = "followthrough"  # the sending system (ISA06), and the subscription's orgIdentifier
TRANSACTION_SYSTEM = "urn:followthrough:pas-transaction"
CLAIM_IDENTIFIER = re.compile(r"^(?P<case_id>.+)-(?P<submission>[1-9][0-9]*)(?P<cancel>-cancel)?$")
REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
OFFICE = "11"  # place of service: the order's location is not modelled yet


def claim_identifier(case_id: str, submission: int, *, cancel: bool = False) -> str:
    return f"{case_id}-{submission}" + ("-cancel" if cancel else "")


def claim_url(identifier: str) -> str:
    """The Claim's fullUrl: a GUID per Claim identifier, unique across requests (PAS spec-17)
    and the same when a request is sent again after a lost answer."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{CASE_SYSTEM}|{identifier}')}"


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _claim(
    identifier: str, case: PasRequest | PasInquiry, insurer: str, created: str, expedited: bool
) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim_url(identifier).removeprefix("urn:uuid:"),
        "extension": [
            {
                "url": codes.TRANSMISSION_IDENTIFIERS,
                "extension": [
                    {"url": "applicationSenderCode", "valueString": SENDER},
                    {"url": "applicationReceiverCode", "valueString": insurer.split("/", 1)[1]},
                    {"url": "interchangeSenderID", "valueString": SENDER},
                ],
            }
        ],
        "identifier": [{"system": CASE_SYSTEM, "value": identifier}],
        "status": "active",
        "type": concept(codes.CLAIM_TYPE, "professional"),
        "use": "preauthorization",
        "patient": {"reference": case.patient},
        "created": created,
        "insurer": {"reference": insurer},
        "provider": {"reference": case.provider},
        # CMS-0057-F's expedited request is X12's urgent level of service (UM06 U); FHIR's
        # priority says the same to a reader that does not know X12.
        "priority": concept(codes.PROCESS_PRIORITY, "stat" if expedited else "normal"),
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": case.coverage}}],
    }
    if expedited:
        claim["extension"].append(
            {
                "url": codes.LEVEL_OF_SERVICE,
                "valueCodeableConcept": concept(codes.X12_1338, "U", "Urgent"),
            }
        )
    return claim


def request_claim(request: PasRequest, insurer: str, created: str) -> dict[str, Any]:
    """The Claim of the request as first submitted (certificationType I, initial)."""
    claim = _claim(
        claim_identifier(request.case_id, request.submission),
        request,
        insurer,
        created,
        request.expedited,
    )
    claim["item"] = [
        {
            "extension": [
                {
                    "url": codes.REQUEST_TYPE,
                    "valueCodeableConcept": concept(codes.X12_1525, "HS", "Health Services Review"),
                },
                {
                    "url": codes.CERTIFICATION_TYPE,
                    "valueCodeableConcept": concept(codes.X12_1322, "I", "Initial"),
                },
                {"url": codes.REQUESTED_SERVICE, "valueReference": {"reference": request.order}},
            ],
            "sequence": item.sequence,
            "category": concept(codes.X12_1365, item.category),
            "productOrService": concept(
                item.service_system, item.service_code, item.service_display
            ),
            **({"servicedDate": item.serviced_date.isoformat()} if item.serviced_date else {}),
            "locationCodeableConcept": concept(codes.PLACE_OF_SERVICE, OFFICE),
        }
        for item in request.items
    ]
    if request.supporting:
        claim["supportingInfo"] = [
            {
                "extension": [
                    {
                        "url": codes.DOCUMENT_INFORMATION,
                        "extension": [
                            {
                                "url": "reportTypeCode",
                                "valueCodeableConcept": concept(
                                    codes.X12_755, "OZ", "Support Data for Claim"
                                ),
                            },
                            {
                                "url": "transmissionMethod",
                                "valueCodeableConcept": concept(
                                    codes.X12_756, "EL", "Electronically Only"
                                ),
                            },
                        ],
                    }
                ],
                "sequence": n,
                "category": concept(codes.TEMP_CODES, "additionalInformation"),
                "valueReference": {"reference": document},
            }
            for n, document in enumerate(request.supporting, start=1)
        ]
    return claim


def cancel_claim(request: PasRequest, insurer: str, created: str) -> dict[str, Any]:
    """A PAS Claim Update cancelling the whole request: certificationType 3 on the Claim and on
    each item (flagged cancelled and changed), `related` naming the Claim it cancels."""
    original = request_claim(request, insurer, created)
    identifier = claim_identifier(request.case_id, request.submission, cancel=True)
    cancel = {
        **original,
        "id": claim_url(identifier).removeprefix("urn:uuid:"),
        "identifier": [{"system": CASE_SYSTEM, "value": identifier}],
        "related": [
            {
                "claim": {
                    "reference": claim_url(original["identifier"][0]["value"]),
                    "identifier": original["identifier"][0],
                },
                "relationship": concept(codes.RELATED_CLAIM, "prior"),
            }
        ],
    }
    cancelled = concept(codes.X12_1322, "3", "Cancel")
    cancel["extension"] = [
        *original["extension"],
        {"url": codes.CERTIFICATION_TYPE, "valueCodeableConcept": cancelled},
    ]
    cancel["item"] = [
        {
            **item,
            "extension": [
                {**e, "valueCodeableConcept": cancelled}
                if e["url"] == codes.CERTIFICATION_TYPE
                else e
                for e in item["extension"]
            ]
            + [{"url": codes.INFO_CHANGED, "valueCode": "changed"}],
            "modifierExtension": [{"url": codes.INFO_CANCELLED, "valueBoolean": True}],
        }
        for item in original["item"]
    ]
    return cancel


def inquiry_claim(inquiry: PasInquiry, insurer: str, created: str) -> dict[str, Any]:
    """The query by example: the request's identifier, patient, insurer and provider."""
    return _claim(
        claim_identifier(inquiry.case_id, inquiry.submission), inquiry, insurer, created, False
    )


def request_bundle(
    transaction: str,
    created: str,
    claims: list[dict[str, Any]],
    resources: list[dict[str, Any]],
    ehr_base: str,
) -> dict[str, Any]:
    """The Bundle: the Claim(s) first, then each resource once, at its EHR URL (PAS spec-16)."""
    entries = [{"fullUrl": claim_url(c["identifier"][0]["value"]), "resource": c} for c in claims]
    entries += [
        {"fullUrl": f"{ehr_base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
    ]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": TRANSACTION_SYSTEM, "value": transaction},
        "type": "collection",
        "timestamp": created,
        "entry": entries,
    }


def references(value: Any) -> list[str]:
    """Every `Type/id` a resource references (contained resources and other forms left out)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str) and REFERENCE.match(inner):
                found.append(inner)
            elif key != "contained":
                found += references(inner)
    elif isinstance(value, list):
        for inner in value:
            found += references(inner)
    return found
