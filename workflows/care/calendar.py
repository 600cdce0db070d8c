"""Business calendar: deadlines counted in business days in the clinic's time zone.

Pure functions over an explicit `BusinessCalendar`, so workflows stay deterministic: the calendar
travels in the workflow input and is never read from the environment.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field


class BusinessCalendar(BaseModel):
    """Working days of a clinic: Monday to Friday, minus holidays, in one time zone."""

    timezone: str = "America/New_York"
    holidays: list[date] = Field(default_factory=list)
    opens_at: time = time(8, 0)
    closes_at: time = time(17, 0)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.timezone)).date()

    def business_day(self, start: date, count: int) -> date:
        """The `count`-th business day after `start` (0: `start` itself, or the next business day)."""
        day = start
        for _ in range(count):
            day += timedelta(days=1)
            while not self.is_business_day(day):
                day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def close_of_business(self, start: datetime, business_days: int) -> datetime:
        """Close of business on the `business_days`-th business day after `start`'s local date.

        "Within 2 business days of discharge on Friday" ends at close of business on Tuesday.
        """
        day = self.business_day(self.local_date(start), business_days)
        return datetime.combine(day, self.closes_at, ZoneInfo(self.timezone))

    def business_days_between(self, start: datetime, end: datetime) -> int:
        """How many business days follow `start`'s local date up to and including `end`'s."""
        first, last = self.local_date(start), self.local_date(end)
        count, day = 0, first
        while day < last:
            day += timedelta(days=1)
            if self.is_business_day(day):
                count += 1
        return count

    def close_of_business_before(self, moment: datetime, business_days: int) -> datetime:
        """Close of business `business_days` business days before `moment`'s local date."""
        day = self.local_date(moment)
        for _ in range(business_days):
            day -= timedelta(days=1)
            while not self.is_business_day(day):
                day -= timedelta(days=1)
        return datetime.combine(day, self.closes_at, ZoneInfo(self.timezone))
