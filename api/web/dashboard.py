"""A team's figures for the supervisor dashboard, from the audit ledger's per-case summary.

The ledger holds every case the team ever had, open or closed, so the dashboard needs no
Temporal query per case and stands even when a case's worker is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median

from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.ledger import metrics
from activities.ledger.tables import CaseSummary
from workflows.care.models import Actor, Role
from workflows.triggers.models import ALERT_CASE_TYPE

AGE_BUCKETS = [(2, "0–2 days"), (7, "3–7 days"), (14, "8–14 days"), (30, "15–30 days")]
SCHEDULE_BUCKETS = [(1, "< 1 day"), (3, "1–3 days"), (7, "3–7 days"), (14, "7–14 days")]
OUTCOMES = ["completed", "cancelled", "patient_declined", "unable_to_reach"]


@dataclass
class Figures:
    cases: int = 0
    open: int = 0
    closed: int = 0
    completion_rate: float | None = None  # completed among opened, as the metrics API
    median_days_to_schedule: float | None = None
    rework_cases: int = 0
    reschedules: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    aging: dict[str, int] = field(default_factory=dict)
    time_to_schedule: dict[str, int] = field(default_factory=dict)
    rework: dict[str, int] = field(default_factory=dict)


def readable_days(days: float | None) -> str:
    """A duration as a supervisor says it: hours under a day, days above."""
    if days is None:
        return "—"
    if days < 1 / 24:
        return "under an hour"
    if days < 1:
        return f"{days * 24:.0f} hours"
    return f"{days:.1f} days"


def _bucket(days: float, buckets: list[tuple[int, str]], last: str) -> str:
    return next((label for limit, label in buckets if days < limit), last)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def figures(summaries: list[CaseSummary], now: datetime | None = None) -> Figures:
    now = now or datetime.now(UTC)
    result = Figures(cases=len(summaries))
    result.aging = {label: 0 for _, label in AGE_BUCKETS} | {"over 30 days": 0}
    result.time_to_schedule = {label: 0 for _, label in SCHEDULE_BUCKETS} | {"14+ days": 0}
    result.outcomes = {stage: 0 for stage in OUTCOMES}
    result.rework = {"none": 0, "1 reschedule": 0, "2+ reschedules": 0}
    scheduled_after = []
    for case in summaries:
        if case.closed_at is not None:
            result.closed += 1
            stage = case.closed_stage or "closed"
            result.outcomes[stage] = result.outcomes.get(stage, 0) + 1
        else:
            result.open += 1
            age = (now - _utc(case.opened_at)) / timedelta(days=1)
            result.aging[_bucket(age, AGE_BUCKETS, "over 30 days")] += 1
        if case.hours_to_schedule is not None:
            days = case.hours_to_schedule / 24
            scheduled_after.append(days)
            result.time_to_schedule[_bucket(days, SCHEDULE_BUCKETS, "14+ days")] += 1
        loops = case.rework_loops
        result.reschedules += loops
        result.rework_cases += loops > 0
        result.rework[["none", "1 reschedule", "2+ reschedules"][min(loops, 2)]] += 1
    result.completion_rate = metrics.completion_rate(result.outcomes["completed"], result.cases)
    if scheduled_after:
        result.median_days_to_schedule = median(scheduled_after)
    return result


def team_figures(engine: Engine, actor: Actor, now: datetime | None = None) -> Figures:
    """The caller's team (every team, for an admin), open and closed cases alike."""
    query = select(CaseSummary).where(CaseSummary.case_type != ALERT_CASE_TYPE)
    if actor.role != Role.ADMIN:
        query = query.where(CaseSummary.team == actor.team)
    with Session(engine) as session:
        return figures(list(session.exec(query)), now)


def team_metrics(engine: Engine, actor: Actor) -> metrics.GroupMetrics | None:
    """The team's figures (every team's, for an admin) as the metrics API counts them, for the
    sections that show a pathway's own (requests to payers, messages to patients); None when the
    team has no case."""
    team = None if actor.role == Role.ADMIN else actor.team
    groups = metrics.compute(engine, metrics.MetricsQuery(team=team))
    return groups[0] if groups else None
