"""Every workflow and activity the worker runs: one list each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.fhir.client import FhirClient
from activities.fhir.evidence import EvidenceActivities
from activities.fhir.intake import IntakeActivities
from activities.fhir.task import TaskActivities
from activities.ledger.anchor import Anchor
from activities.ledger.append import LedgerActivities
from activities.staff import StaffActivities
from activities.triggers import TriggerActivities
from workers.settings import get_settings
from workflows.detection.workflow import EhrDetectionWorkflow
from workflows.referral.workflow import ReferralWorkflow
from workflows.triggers.workflow import DecisionTriggersWorkflow

WORKFLOWS: list[type] = [ReferralWorkflow, DecisionTriggersWorkflow, EhrDetectionWorkflow]


def activities(engine: Engine, fhir: FhirClient | None = None) -> list[Callable[..., Any]]:
    settings = get_settings()
    fhir = fhir or FhirClient.from_settings(settings)
    evidence, tasks = EvidenceActivities(fhir), TaskActivities(fhir)
    intake = IntakeActivities(fhir, settings)
    staff = StaffActivities(engine)
    anchor = Anchor(settings.ledger_anchor_key)
    ledger = LedgerActivities(engine, anchor)
    triggers = TriggerActivities(engine, anchor)
    return [
        staff.notify,
        ledger.append,
        triggers.evaluate,
        evidence.appointment_booked,
        evidence.report_filed,
        evidence.documents_received,
        tasks.mirror_task,
        intake.detect_changes,
    ]
