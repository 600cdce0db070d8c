"""A case's proof as FHIR R4: a Bundle of AuditEvent (every ledger entry) and Provenance (every
piece of evidence), tagged with the pathway and version that applied."""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from api.audit import AuditEvent

EVENT_SYSTEM = "urn:followthrough:case-event"
PATHWAY_SYSTEM = "urn:followthrough:pathway"
LEDGER_SYSTEM = "urn:followthrough:ledger"


def proof_bundle(case_id: str, trail: list[AuditEvent]) -> dict[str, Any]:
    pathways = sorted({(event.pathway, event.pathway_version) for event in trail})
    entries: list[dict[str, Any]] = []
    for event in trail:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{_uuid(event, 'audit')}",
                "resource": _audit_event(case_id, event),
            }
        )
        for index, evidence in enumerate(event.evidence):
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{_uuid(event, f'provenance-{index}')}",
                    "resource": _provenance(event, evidence),
                }
            )
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "identifier": {"system": LEDGER_SYSTEM, "value": case_id},
            "timestamp": trail[-1].recorded_at.isoformat() if trail else None,
            "meta": {
                "tag": [
                    {"system": PATHWAY_SYSTEM, "code": name, "version": version}
                    for name, version in pathways
                ]
            },
            "entry": entries,
        }
    )
    return bundle.model_dump(mode="json", exclude_none=True)


def _uuid(event: AuditEvent, part: str) -> str:
    # Stable ids: the same entry always exports to the same fullUrl.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.case_id}/{event.seq}/{part}"))


def _audit_event(case_id: str, event: AuditEvent) -> dict[str, Any]:
    details = [
        {"type": "seq", "valueString": str(event.seq)},
        {"type": "hash", "valueString": event.hash},
        {"type": "prev_hash", "valueString": event.prev_hash},
    ]
    details += [
        {"type": key, "valueString": value} for key, value in event.details.items() if value
    ]
    if event.stage_before:
        details.append({"type": "stage_before", "valueString": event.stage_before})
    if event.stage_after:
        details.append({"type": "stage_after", "valueString": event.stage_after})
    return {
        "resourceType": "AuditEvent",
        "type": {"system": EVENT_SYSTEM, "code": event.kind},
        "subtype": [
            {"system": PATHWAY_SYSTEM, "code": event.pathway, "version": event.pathway_version}
        ],
        "action": "E",
        "recorded": event.at.isoformat(),
        "outcome": "0",
        "outcomeDesc": event.summary,
        "agent": [
            {
                "who": {"identifier": {"value": event.actor}, "display": event.role},
                "requestor": event.role != "system",
            }
        ],
        "source": {"observer": {"display": "Followthrough"}},
        "entity": [
            {"what": {"identifier": {"system": LEDGER_SYSTEM, "value": case_id}}, "detail": details}
        ]
        + [_evidence_entity(evidence) for evidence in event.evidence],
    }


def _evidence_entity(evidence: Any) -> dict[str, Any]:
    found = {
        "version_id": evidence.version_id,
        "last_updated": evidence.last_updated,
        "sha256": evidence.sha256,
    }
    entity: dict[str, Any] = {"what": {"reference": evidence.reference}}
    details = [{"type": key, "valueString": value} for key, value in found.items() if value]
    if details:
        entity["detail"] = details
    return entity


def _provenance(event: AuditEvent, evidence: Any) -> dict[str, Any]:
    entity_what: dict[str, Any] = {"reference": evidence.reference}
    if evidence.version_id:
        entity_what["reference"] = f"{evidence.reference}/_history/{evidence.version_id}"
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": evidence.reference}],
        "recorded": event.recorded_at.isoformat(),
        "occurredDateTime": event.at.isoformat(),
        "policy": [f"{PATHWAY_SYSTEM}:{event.pathway}:{event.pathway_version}"],
        "activity": {"coding": [{"system": EVENT_SYSTEM, "code": event.kind}]},
        "agent": [{"who": {"identifier": {"value": event.actor}, "display": event.role}}],
        "entity": [{"role": "source", "what": entity_what}],
    }
    return resource
