"""Who the patient is, read from the EHR when a page shows it, and never kept anywhere else.

Temporal, the audit ledger, logs, metrics and search attributes name a patient by FHIR id only.
The care team still has to know whom to call: the case page reads the Patient at view time, and
the queue reads its rows' orders, their patients included, in one batched search. What is
read is shown, logged to the access log (as case reads are), held in memory briefly, and
forgotten. Which fields a role sees follows the minimum necessary: the roles that reach out to
patients get name, birth date, phone and language; auditors get the name alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError

from activities.fhir.auth import make_auth
from activities.fhir.client import FhirClient
from api import audit
from workers.settings import Settings
from workflows.care.models import Actor, Role

log = structlog.get_logger(__name__)

OUTREACH_ROLES = {Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN}
QUEUE_ROLES = {Role.COORDINATOR, Role.SUPERVISOR}  # names on their own team's queue rows
CACHE_LIMIT = 10_000


class PatientCard(BaseModel):
    """What a role may see of the patient. `available` False: the EHR could not say."""

    reference: str
    available: bool = True
    name: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    language: str | None = None


class RowLabel(BaseModel):
    """A queue row's patient name and the service ordered."""

    name: str | None = None
    service: str | None = None


def display_name(patient: dict[str, Any]) -> str | None:
    names = patient.get("name") or []
    chosen = next((n for n in names if n.get("use") in ("official", "usual")), None)
    chosen = chosen or (names[0] if names else None)
    if not chosen:
        return None
    text = chosen.get("text") or " ".join([*chosen.get("given", []), chosen.get("family", "")])
    return text.strip() or None


def _phone(patient: dict[str, Any]) -> str | None:
    phones = [t for t in patient.get("telecom") or [] if t.get("system") == "phone"]
    phones.sort(key=lambda t: (t.get("use") not in ("mobile", "home"), t.get("rank", 99)))
    return phones[0].get("value") if phones else None


def _language(patient: dict[str, Any]) -> str | None:
    spoken = patient.get("communication") or []
    chosen = next((c for c in spoken if c.get("preferred")), spoken[0] if spoken else None)
    if not chosen:
        return None
    language = chosen.get("language") or {}
    coding = (language.get("coding") or [{}])[0]
    return language.get("text") or coding.get("display") or coding.get("code")


def card_for(actor: Actor, reference: str, patient: dict[str, Any]) -> PatientCard:
    card = PatientCard(reference=reference, name=display_name(patient))
    if actor.role in OUTREACH_ROLES:
        born = patient.get("birthDate")
        card.birth_date = date.fromisoformat(born) if born and len(born) == 10 else None
        card.phone = _phone(patient)
        card.language = _language(patient)
    return card


def service_text(order: dict[str, Any]) -> str | None:
    code = order.get("code") or {}
    return code.get("text") or ((code.get("coding") or [{}])[0]).get("display")


async def read_patient(fhir: FhirClient, actor: Actor, reference: str) -> PatientCard:
    """The case page's patient card; unavailable (never an error) when the EHR cannot answer."""
    kind, _, pid = reference.partition("/")
    if kind != "Patient" or not pid:
        return PatientCard(reference=reference, available=False)
    try:
        patient = await fhir.read(kind, pid)
    except ApplicationError as err:
        log.info("patient_unavailable", failure=err.type)  # the EHR's words stay out of logs
        return PatientCard(reference=reference, available=False)
    return card_for(actor, reference, patient)


@dataclass
class QueueLabels:
    """Names and services for queue rows, per user, kept `ttl` seconds in memory only.

    Each user's rows are read from the EHR once per `ttl` and each such read is logged; the
    queue page's polling in between is answered from memory."""

    ttl: float
    held: dict[tuple[str, str], tuple[float, RowLabel]] = field(default_factory=dict)

    async def for_rows(
        self, fhir: FhirClient, engine: Engine, actor: Actor, cases: dict[str, str]
    ) -> dict[str, RowLabel]:
        """`cases`: case id → the order's id (a ServiceRequest). Answers the labels it has."""
        now = time.monotonic()
        labels = {}
        for case_id in cases:
            kept = self.held.get((actor.user_id, case_id))
            if kept and kept[0] > now:
                labels[case_id] = kept[1]
        wanted = {case_id: order for case_id, order in cases.items() if case_id not in labels}
        if not wanted:
            return labels
        try:
            read = await _read_rows(fhir, wanted)
        except ApplicationError as err:
            log.info("queue_patients_unavailable", failure=err.type, rows=len(wanted))
            return labels
        self._keep(actor, read, now)
        record_reads(engine, actor, list(read), "queue-patient")
        return labels | read

    def _keep(self, actor: Actor, read: dict[str, RowLabel], now: float) -> None:
        if len(self.held) + len(read) > CACHE_LIMIT:
            self.held = {k: v for k, v in self.held.items() if v[0] > now}
            if len(self.held) + len(read) > CACHE_LIMIT:
                self.held.clear()
        for case_id, label in read.items():
            self.held[(actor.user_id, case_id)] = (now + self.ttl, label)


async def _read_rows(fhir: FhirClient, wanted: dict[str, str]) -> dict[str, RowLabel]:
    """One batched search of the page's orders, their patients included (`_include`); an EHR
    that does not include them is asked for the missing patients in a second batched search."""
    count = str(len(wanted))
    orders, included = await fhir.search_including(
        "ServiceRequest",
        {
            "_id": ",".join(sorted(set(wanted.values()))),
            "_include": "ServiceRequest:subject",
            "_count": count,
        },
    )
    by_order = {order["id"]: order for order in orders}
    subjects = {
        order["id"]: ((order.get("subject") or {}).get("reference") or "") for order in orders
    }
    patients = {f"Patient/{p['id']}": p for p in included if p["resourceType"] == "Patient"}
    missing = sorted(
        {ref.split("/", 1)[1] for ref in subjects.values() if ref.startswith("Patient/")}
        - {ref.split("/", 1)[1] for ref in patients}
    )
    if missing:
        found = await fhir.search("Patient", {"_id": ",".join(missing), "_count": count})
        patients |= {f"Patient/{p['id']}": p for p in found}
    labels = {}
    for case_id, order_id in wanted.items():
        order = by_order.get(order_id)
        if order is None:
            continue
        patient = patients.get(subjects[order_id])
        labels[case_id] = RowLabel(
            name=display_name(patient) if patient else None, service=service_text(order)
        )
    return labels


def record_reads(engine: Engine, actor: Actor, case_ids: list[str], view: str) -> None:
    """One access-log row per case whose patient was read for this person."""
    if not case_ids:
        return
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    audit.record_access(engine, actor, case_ids, view, request_id)


def _state(request: Request) -> Any:
    """The app's EHR client for patient reads (a short timeout: a page waits for it) and its
    queue labels, made on first use."""
    state = request.app.state
    if getattr(state, "patient_ehr", None) is None:
        settings: Settings = state.settings
        state.patient_ehr = FhirClient(
            settings.fhir_base_url,
            make_auth(settings),
            timeout=settings.patient_timeout_seconds,
        )
        state.queue_labels = QueueLabels(ttl=settings.patient_cache_seconds)
    return state


async def patient_ehr(request: Request) -> FhirClient:
    return _state(request).patient_ehr


async def queue_labels(request: Request) -> QueueLabels:
    return _state(request).queue_labels


PatientEhrDep = Annotated[FhirClient, Depends(patient_ehr)]
QueueLabelsDep = Annotated[QueueLabels, Depends(queue_labels)]
