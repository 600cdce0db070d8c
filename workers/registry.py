"""Every workflow and activity the worker runs: one list each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.ledger.append import LedgerActivities
from activities.staff import StaffActivities
from workflows.referral.workflow import ReferralWorkflow

WORKFLOWS: list[type] = [ReferralWorkflow]


def activities(engine: Engine) -> list[Callable[..., Any]]:
    staff = StaffActivities(engine)
    ledger = LedgerActivities(engine)
    return [staff.notify, ledger.append]
