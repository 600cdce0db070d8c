"""Every workflow and activity the workers run: one list each, activities by task queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.fhir.client import FhirClient
from activities.fhir.communication import CommunicationActivities
from activities.fhir.contact import ContactActivities
from activities.fhir.evidence import EvidenceActivities
from activities.fhir.intake import IntakeActivities
from activities.fhir.prerequisites import PrerequisiteActivities
from activities.fhir.task import TaskActivities
from activities.ledger.anchor import Anchor
from activities.ledger.append import LedgerActivities
from activities.messaging.send import MessagingActivities
from activities.payer.pas import PayerActivities
from activities.staff import StaffActivities
from activities.triggers import TriggerActivities
from workers.settings import get_settings
from workflows.care.queues import QueueKind
from workflows.detection.workflow import EhrDetectionWorkflow
from workflows.pathways import PATHWAYS
from workflows.triggers.workflow import DecisionTriggersWorkflow

# Every pathway's case workflow, and the platform's own.
WORKFLOWS: list[type] = [
    *(pathway.workflow for pathway in PATHWAYS),
    DecisionTriggersWorkflow,
    EhrDetectionWorkflow,
]


def activities(
    engine: Engine, fhir: FhirClient | None = None, payer_url: str | None = None
) -> dict[QueueKind, list[Callable[..., Any]]]:
    """The activities of each task queue (the workflows name the queue of every call they make,
    through workflows/care/queues.py). `fhir` and `payer_url` stand in for the EHR and the payer
    the settings name (tests point them at the sandboxes)."""
    settings = get_settings()
    fhir = fhir or FhirClient.from_settings(settings)
    payer = PayerActivities(
        fhir, payer_url or settings.payer_base_url, timeout=settings.payer_timeout_seconds
    )
    evidence, tasks = EvidenceActivities(fhir), TaskActivities(fhir)
    communications = CommunicationActivities(fhir)
    prerequisites = PrerequisiteActivities(fhir)
    intake = IntakeActivities(fhir, settings)
    staff = StaffActivities(engine)
    anchor = Anchor(settings.ledger_anchor_key)
    ledger = LedgerActivities(engine, anchor)
    triggers = TriggerActivities(engine, anchor)
    messaging = MessagingActivities(engine, fhir, settings)
    contact = ContactActivities(fhir, settings)
    return {
        # The app database only: as quick as the workflow tasks beside them.
        QueueKind.WORKFLOWS: [ledger.append, triggers.evaluate],
        QueueKind.EHR: [
            evidence.appointment_booked,
            evidence.report_filed,
            evidence.documents_received,
            tasks.mirror_task,
            communications.record,
            intake.detect_changes,
            prerequisites.check,
            # The payer's requests are built from the EHR's records: they share its queue.
            payer.submit,
            payer.inquire,
            # Which channels reach the patient, their time zone and language: the EHR's Patient.
            contact.patient_contact,
        ],
        # Messages to people: staff notices to their inbox, and messages to patients by SMS,
        # email or the portal, throttled and scaled with their providers while reminders and
        # escalations keep their timers on the workflow queue.
        QueueKind.MESSAGING: [staff.notify, messaging.send, messaging.release],
    }
