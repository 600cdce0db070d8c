"""Every workflow and activity the worker runs: one list each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.ledger.append import LedgerActivities
from activities.staff import StaffActivities
from activities.triggers import TriggerActivities
from workflows.referral.workflow import ReferralWorkflow
from workflows.triggers.workflow import DecisionTriggersWorkflow

WORKFLOWS: list[type] = [ReferralWorkflow, DecisionTriggersWorkflow]


def activities(engine: Engine) -> list[Callable[..., Any]]:
    staff = StaffActivities(engine)
    ledger = LedgerActivities(engine)
    triggers = TriggerActivities(engine)
    return [staff.notify, ledger.append, triggers.evaluate]
