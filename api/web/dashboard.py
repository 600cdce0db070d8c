"""A team's figures for the supervisor dashboard, from the work queue and the case timelines.

These are computed from what the service layer offers today (visibility plus each case's detail);
the audit ledger's metrics will replace the source without changing the figures' shape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median

from temporalio.client import Client

from api import cases
from workflows.care.models import Actor, CaseDetail, EventKind

LIMIT = 200  # cases per dashboard: one visibility page, read a few at a time
AGE_BUCKETS = [(2, "0–2 days"), (7, "3–7 days"), (14, "8–14 days"), (30, "15–30 days")]
SCHEDULE_BUCKETS = [(1, "< 1 day"), (3, "1–3 days"), (7, "3–7 days"), (14, "7–14 days")]
OUTCOMES = ["completed", "cancelled", "patient_declined", "unable_to_reach"]


@dataclass
class Figures:
    cases: int = 0
    open: int = 0
    closed: int = 0
    completion_rate: float | None = None  # completed among closed
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


def days_to_schedule(case: CaseDetail) -> float | None:
    """Opened to the first move into `scheduled`, in days; None if never scheduled."""
    for event in case.timeline:
        if event.kind == EventKind.STAGE_CHANGED and event.stage_after == "scheduled":
            return (event.at - case.opened_at) / timedelta(days=1)
    return None


def figures(details: list[CaseDetail], now: datetime | None = None) -> Figures:
    now = now or datetime.now(UTC)
    result = Figures(cases=len(details))
    result.aging = {label: 0 for _, label in AGE_BUCKETS} | {"over 30 days": 0}
    result.time_to_schedule = {label: 0 for _, label in SCHEDULE_BUCKETS} | {"14+ days": 0}
    result.outcomes = {stage: 0 for stage in OUTCOMES}
    result.rework = {"none": 0, "1 reschedule": 0, "2+ reschedules": 0}
    scheduled_after = []
    for case in details:
        if case.closed:
            result.closed += 1
            result.outcomes[case.stage] = result.outcomes.get(case.stage, 0) + 1
        else:
            result.open += 1
            age = (now - case.opened_at) / timedelta(days=1)
            result.aging[_bucket(age, AGE_BUCKETS, "over 30 days")] += 1
        days = days_to_schedule(case)
        if days is not None:
            scheduled_after.append(days)
            result.time_to_schedule[_bucket(days, SCHEDULE_BUCKETS, "14+ days")] += 1
        loops = case.counters.get("reschedules", 0)
        result.reschedules += loops
        result.rework_cases += loops > 0
        result.rework[["none", "1 reschedule", "2+ reschedules"][min(loops, 2)]] += 1
    if result.closed:
        result.completion_rate = result.outcomes["completed"] / result.closed
    if scheduled_after:
        result.median_days_to_schedule = median(scheduled_after)
    return result


async def team_figures(client: Client, actor: Actor) -> Figures:
    """The caller's team (everything, for an admin), open and closed cases alike."""
    page = await cases.work_queue(
        client, actor, cases.QueueFilter(include_closed=True), LIMIT, None
    )
    limit = asyncio.Semaphore(8)  # a few queries at a time, so a dashboard cannot flood Temporal

    async def detail(case_id: str) -> CaseDetail:
        async with limit:
            return await cases.read_case(client, case_id, actor)

    details = await asyncio.gather(*(detail(item.case_id) for item in page.items))
    return figures(list(details))
