"""Verification against the EHR: a checkbox is not evidence, a resource version is.

Each check reads the EHR and answers with a `Verdict`: verified with the evidence (resource type,
id, versionId, lastUpdated, SHA-256), or not, with a reason the case owner can act on
("Appointment/123 is cancelled"). A missing resource is a verdict, not a failure; an EHR that is
down is a failure, retried until it answers.

Canonical JSON, for the hash: the resource exactly as the EHR served it, `meta` included (its
versionId and lastUpdated name the version that was hashed), keys sorted, no insignificant
whitespace, UTF-8 without escaping. The same version read twice hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient, parse
from activities.fhir.models import AppointmentCheck, DocumentsCheck, ReportCheck, Verdict
from workflows.care.models import Evidence

BOOKED = {"booked", "arrived", "fulfilled"}
FILED_REPORT = {"final", "amended", "corrected", "appended"}


def canonical_json(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def evidence_of(resource: dict[str, Any]) -> Evidence:
    meta = resource.get("meta") or {}
    return Evidence(
        reference=f"{resource['resourceType']}/{resource['id']}",
        version_id=meta.get("versionId"),
        last_updated=meta.get("lastUpdated"),
        sha256=hashlib.sha256(canonical_json(resource)).hexdigest(),
    )


async def _refusal_as_verdict(checking: Awaitable[Verdict]) -> Verdict:
    """A refusal (4xx) is a verdict, not a failure: retrying cannot change it, and the EHR's words,
    which may describe the patient, go to the case timeline rather than the worker's log."""
    try:
        return await checking
    except ApplicationError as err:
        if not err.non_retryable:
            raise
        return Verdict(verified=False, reason=err.message)


def refs(references: list[Any] | None) -> set[str]:
    return {ref.reference for ref in references or [] if ref.reference}


class EvidenceActivities:
    def __init__(self, fhir: FhirClient) -> None:
        self.fhir = fhir

    # -- scheduled ----------------------------------------------------------------------------

    @activity.defn(name="appointment_booked")
    async def appointment_booked(self, check: AppointmentCheck) -> Verdict:
        return await _refusal_as_verdict(self._appointment_booked(check))

    @activity.defn(name="report_filed")
    async def report_filed(self, check: ReportCheck) -> Verdict:
        return await _refusal_as_verdict(self._report_filed(check))

    @activity.defn(name="documents_received")
    async def documents_received(self, check: DocumentsCheck) -> Verdict:
        return await _refusal_as_verdict(self._documents_received(check))

    async def _appointment_booked(self, check: AppointmentCheck) -> Verdict:
        """A booked/arrived/fulfilled Appointment for the patient, linked to the order (basedOn)
        or not linked to any other order, starting today or later."""
        if check.appointment:
            raw = await self.fhir.read_if_exists(check.appointment)
            if raw is None:
                return Verdict(verified=False, reason=f"{check.appointment} is not in the EHR")
            problem = self._appointment_problem(raw, check)
            if problem:
                return Verdict(verified=False, reason=problem)
            return self._booked(raw)
        found = await self.fhir.search(
            "Appointment", {"based-on": check.order, "patient": check.patient}
        )
        good = [raw for raw in found if not self._appointment_problem(raw, check)]
        if not good:
            return Verdict(verified=False, reason=f"No booked appointment for {check.order}")
        return self._booked(min(good, key=lambda raw: datetime.fromisoformat(raw["start"])))

    def _appointment_problem(self, raw: dict[str, Any], check: AppointmentCheck) -> str | None:
        appointment = parse(raw)
        name = f"Appointment/{raw['id']}"
        if appointment.status not in BOOKED:
            return f"{name} is {appointment.status}"
        actors = {p.actor.reference for p in appointment.participant or [] if p.actor}
        if check.patient not in actors:
            return f"{name} is not for this case's patient"
        orders = refs(appointment.basedOn)
        if orders and check.order not in orders:
            return f"{name} is for another order"
        if appointment.start is None:
            return f"{name} has no start time"
        if appointment.start < check.not_before:
            return f"{name} was on {appointment.start.date().isoformat()}, before today"
        return None

    def _booked(self, raw: dict[str, Any]) -> Verdict:
        start = datetime.fromisoformat(raw["start"])
        return Verdict(verified=True, evidence=[evidence_of(raw)], appointment_at=start)

    # -- completed ------------------------------------------------------------------------------

    async def _report_filed(self, check: ReportCheck) -> Verdict:
        """The order completed in the EHR, or a filed DiagnosticReport / current DocumentReference
        for it (the one named, else any found by a search on the order)."""
        evidence: list[Evidence] = []
        reasons: list[str] = []
        order = await self.fhir.read_if_exists(check.order)
        if order is None:
            return Verdict(verified=False, reason=f"{check.order} is not in the EHR")
        if order.get("status") == "completed":
            evidence.append(evidence_of(order))
        if check.report:
            report = await self.fhir.read_if_exists(check.report)
            problem = (
                f"{check.report} is not in the EHR"
                if report is None
                else self._report_problem(report, check)
            )
            if problem:
                reasons.append(problem)
            else:
                assert report is not None
                evidence.append(evidence_of(report))
        else:
            for kind, param in (("DiagnosticReport", "based-on"), ("DocumentReference", "related")):
                for report in await self.fhir.search(kind, {param: check.order}):
                    if not self._report_problem(report, check):
                        evidence.append(evidence_of(report))
        if check.report and reasons:
            # The care team named a report that does not hold up: that is rework, whatever else.
            return Verdict(verified=False, reason=reasons[0], evidence=evidence)
        if not evidence:
            return Verdict(
                verified=False,
                reason=f"No report on file for {check.order}, and it is {order.get('status')}",
            )
        return Verdict(verified=True, evidence=evidence)

    def _report_problem(self, raw: dict[str, Any], check: ReportCheck) -> str | None:
        report = parse(raw)
        name = f"{raw['resourceType']}/{raw['id']}"
        if raw["resourceType"] == "DiagnosticReport":
            if report.status not in FILED_REPORT:
                return f"{name} is {report.status}, not final"
            orders = refs(report.basedOn)
        else:
            if report.status != "current":
                return f"{name} is {report.status}"
            orders = refs(report.context.related if report.context else None)
        if report.subject is None or report.subject.reference != check.patient:
            return f"{name} is not for this case's patient"
        if check.order not in orders:
            return f"{name} is not linked to {check.order}"
        return None

    # -- documents received ---------------------------------------------------------------------

    async def _documents_received(self, check: DocumentsCheck) -> Verdict:
        """Every listed DocumentReference is on file, current, for this patient."""
        evidence: list[Evidence] = []
        problems: list[str] = []
        for reference in check.documents:
            if not reference.startswith("DocumentReference/"):
                problems.append(f"{reference} is not a DocumentReference")
                continue
            raw = await self.fhir.read_if_exists(reference)
            if raw is None:
                problems.append(f"{reference} is not in the EHR")
                continue
            document = parse(raw)
            if document.status != "current":
                problems.append(f"{reference} is {document.status}")
            elif document.subject is None or document.subject.reference != check.patient:
                problems.append(f"{reference} is not for this case's patient")
            else:
                evidence.append(evidence_of(raw))
        if problems:
            return Verdict(verified=False, reason="; ".join(problems)[:500], evidence=evidence)
        return Verdict(verified=True, evidence=evidence)
