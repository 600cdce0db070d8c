"""Decision triggers: thresholds on care-execution metrics that raise and clear alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.care.calendar import BusinessCalendar

ALERT_CASE_TYPE = "alert"  # ledger entries of alerts, kept apart from cases in the metrics
Metric = Literal["exception_rate", "unowned_cases", "median_business_days_to_schedule"]


class TriggerRule(BaseModel):
    """`metric` above `above`, per team (or for `team` only), over cases of `case_type` if set.

    exception_rate and median_business_days_to_schedule look at cases opened in the last
    `window_days`; unowned_cases counts open cases nobody has claimed for `older_than_days`.
    """

    name: str = Field(pattern=r"^[a-z0-9\-]{1,48}$")
    metric: Metric
    above: float
    window_days: int = 7
    older_than_days: float = 2
    case_type: str | None = None
    team: str | None = None


DEFAULT_RULES = [
    TriggerRule(name="exception-rate", metric="exception_rate", above=0.15, window_days=7),
    TriggerRule(name="unowned-backlog", metric="unowned_cases", above=20, older_than_days=2),
    TriggerRule(
        name="slow-scheduling", metric="median_business_days_to_schedule", above=10, window_days=30
    ),
]


class Evaluation(BaseModel):
    rules: list[TriggerRule]
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    now: datetime | None = None  # the workflow's time, so time-skipping tests line up


class TriggerChange(BaseModel):
    rule: str
    team: str
    value: float
    above: float
    raised: bool  # False: cleared

    @property
    def alert_id(self) -> str:
        return f"alert-{self.rule}-{self.team}"


class EvaluationResult(BaseModel):
    evaluated: int
    changes: list[TriggerChange]
