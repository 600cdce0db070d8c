"""What the payer sandbox knows of Da Vinci PAS (STU 2.2): URLs, code systems and the answers.

Spelled out here rather than imported from Followthrough's activities on purpose: the sandbox
stands in for somebody else's payer, so a URL the activities get wrong fails the tests instead
of agreeing with itself.
"""

from __future__ import annotations

from typing import Any

PAS = "http://hl7.org/fhir/us/davinci-pas"
SD = f"{PAS}/StructureDefinition"
REVIEW_ACTION = f"{SD}/extension-reviewAction"
REVIEW_ACTION_CODE = f"{SD}/extension-reviewActionCode"
CERTIFICATION_TYPE = f"{SD}/extension-certificationType"
REQUEST_TYPE = f"{SD}/extension-serviceItemRequestType"
ITEM_PREAUTH_PERIOD = f"{SD}/extension-itemPreAuthPeriod"
ITEM_PREAUTH_ISSUE_DATE = f"{SD}/extension-itemPreAuthIssueDate"
ITEM_AUTHORIZED_PROVIDER = f"{SD}/extension-itemAuthorizedProvider"
ADMINISTRATION_REFERENCE = f"{SD}/extension-administrationReferenceNumber"
TRANSMISSION_IDENTIFIERS = f"{SD}/extension-TransmissionIdentifiers"
RESPONSE_PROFILE = f"{SD}/profile-claimresponse"
RESPONSE_BUNDLE_PROFILE = f"{SD}/profile-pas-response-bundle"
TOPIC = f"{PAS}/SubscriptionTopic/PASSubscriptionTopic"

X12_306 = "https://codesystem.x12.org/005010/306"  # HCR01 review action
X12_886 = "https://codesystem.x12.org/external/886"  # HCR03 review decision reason
X12_1322 = "https://codesystem.x12.org/005010/1322"  # UM02 certification type
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PAYER_SYSTEM = "urn:trnorg:payer-sandbox"  # the payer's own trace numbers (TRN)

ACTIONS = {
    "A1": "Certified in total",
    "A2": "Certified - partial",
    "A3": "Not Certified",
    "A4": "Pended",
    "A6": "Modified",
    "C": "Cancelled",
    "CT": "Contact Payer",
    "NA": "No Action Required",
}


def extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension") or [] if e.get("url") == url), None)


def coded(concept: dict[str, Any] | None, system: str | None = None) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if system is None or coding.get("system") == system:
            return coding.get("code")
    return None


def certification(element: dict[str, Any]) -> str | None:
    found = extension(element, CERTIFICATION_TYPE)
    return coded(found.get("valueCodeableConcept"), X12_1322) if found else None


def is_cancel(claim: dict[str, Any]) -> bool:
    """certificationType 3 on the Claim, or on every item: the whole request is cancelled."""
    items = claim.get("item") or []
    return certification(claim) == "3" or (
        bool(items) and all(certification(item) == "3" for item in items)
    )


def review_item(decision: dict[str, Any], provider: dict[str, Any], today: str) -> dict[str, Any]:
    """One ClaimResponse.item: its review action on the adjudication, as the PAS IG examples."""
    action = decision["action"]
    review: list[dict[str, Any]] = [
        {
            "url": REVIEW_ACTION_CODE,
            "valueCodeableConcept": {
                "coding": [{"system": X12_306, "code": action, "display": ACTIONS[action]}]
            },
        }
    ]
    if decision.get("number"):
        review.append({"url": "number", "valueString": decision["number"]})
    if decision.get("reason"):
        reason = decision["reason"]
        review.append(
            {
                "url": "reasonCode",
                "valueCodeableConcept": {
                    "coding": [
                        {"system": X12_886, "code": reason["code"], "display": reason["display"]}
                    ]
                },
            }
        )
    extensions: list[dict[str, Any]] = [
        {
            "url": ITEM_AUTHORIZED_PROVIDER,
            "extension": [{"url": "provider", "valueReference": provider}],
        }
    ]
    if decision.get("start"):
        extensions.append({"url": ITEM_PREAUTH_ISSUE_DATE, "valueDate": today})
        extensions.append(
            {
                "url": ITEM_PREAUTH_PERIOD,
                "valuePeriod": {"start": decision["start"], "end": decision["end"]},
            }
        )
    if decision.get("pended"):
        extensions.append({"url": ADMINISTRATION_REFERENCE, "valueString": decision["pended"]})
    return {
        "extension": extensions,
        "itemSequence": decision["sequence"],
        "adjudication": [
            {
                "category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]},
                "extension": [{"url": REVIEW_ACTION, "extension": review}],
            }
        ],
    }


def claim_response(
    claim: dict[str, Any],
    decisions: list[dict[str, Any]],
    response_id: str,
    created: str,
) -> dict[str, Any]:
    """The PAS ClaimResponse for `claim` with each item's current decision."""
    today = created[:10]
    approved = [d for d in decisions if d["action"] in ("A1", "A2", "A6")]
    pended = [d for d in decisions if d["action"] == "A4"]
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": response_id,
        "meta": {"profile": [RESPONSE_PROFILE]},
        "identifier": [{"system": PAYER_SYSTEM, "value": response_id}],
        "status": "active",
        "type": claim["type"],
        "use": "preauthorization",
        "patient": claim["patient"],
        "created": created,
        "insurer": claim["insurer"],
        "requestor": claim["provider"],
        "request": {"type": "Claim", "identifier": claim["identifier"][0]},
        # The IG's outcome codes are complete | error | partial: a pended request was processed
        # completely too (its items say A4), as in the IG's pended example.
        "outcome": "complete",
        "item": [review_item(d, claim["provider"], today) for d in decisions],
    }
    if approved:
        response["preAuthRef"] = approved[0]["number"]
        response["preAuthPeriod"] = {
            "start": min(d["start"] for d in approved),
            "end": max(d["end"] for d in approved),
        }
    if pended:
        response["extension"] = [
            {"url": ADMINISTRATION_REFERENCE, "valueString": pended[0]["pended"]}
        ]
    return response
