"""Business-day deadlines: weekends, holidays and the clinic's time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from workflows.care.calendar import BusinessCalendar

NY = ZoneInfo("America/New_York")
calendar = BusinessCalendar(timezone="America/New_York", holidays=[date(2026, 12, 25)])


def test_friday_discharge_two_business_days_ends_tuesday():
    friday = datetime(2026, 11, 20, 15, 0, tzinfo=NY)
    assert calendar.close_of_business(friday, 2) == datetime(2026, 11, 24, 17, 0, tzinfo=NY)


def test_weekend_start_counts_from_monday():
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=NY)
    assert calendar.close_of_business(saturday, 1) == datetime(2026, 11, 23, 17, 0, tzinfo=NY)


def test_holiday_is_skipped():
    christmas_eve = datetime(2026, 12, 24, 9, 0, tzinfo=NY)  # Thursday; Friday is a holiday
    assert calendar.close_of_business(christmas_eve, 1) == datetime(2026, 12, 28, 17, 0, tzinfo=NY)


def test_local_date_decides_the_day():
    # 02:00 UTC on Tuesday is still Monday evening in New York.
    late_monday = datetime.fromisoformat("2026-11-24T02:00:00+00:00")
    assert calendar.close_of_business(late_monday, 1).date() == date(2026, 11, 24)
    tokyo = BusinessCalendar(timezone="Asia/Tokyo")
    assert tokyo.close_of_business(late_monday, 1).date() == date(2026, 11, 25)


def test_reminder_before_due_and_counting_between():
    due = datetime(2026, 11, 30, 17, 0, tzinfo=NY)  # Monday
    assert calendar.close_of_business_before(due, 1) == datetime(2026, 11, 27, 17, 0, tzinfo=NY)
    start = datetime(2026, 11, 20, 12, 0, tzinfo=NY)
    assert calendar.business_days_between(start, due) == 6
