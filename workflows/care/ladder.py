"""Escalation ladders: what happens as a milestone's deadline approaches and passes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows.care.calendar import BusinessCalendar
from workflows.care.models import EventKind, Role


@dataclass(frozen=True)
class Remind:
    """Remind the owner (or, with no owner, the team) at close of business `before_due` days early."""

    before_due: int = 1
    kind: EventKind = EventKind.REMINDED

    def at(self, due: datetime, calendar: BusinessCalendar) -> datetime:
        return calendar.close_of_business_before(due, self.before_due)


@dataclass(frozen=True)
class Escalate:
    """Escalate to `to` in the owning team when the deadline passes; the case is flagged stalled."""

    to: Role = Role.SUPERVISOR
    kind: EventKind = EventKind.ESCALATED

    def at(self, due: datetime, calendar: BusinessCalendar) -> datetime:
        return due


Step = Remind | Escalate


def remind(before_due: int = 1) -> Remind:
    return Remind(before_due=before_due)


def escalate(to: Role = Role.SUPERVISOR) -> Escalate:
    return Escalate(to=to)
