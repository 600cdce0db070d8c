"""The rules every patient message obeys, with dates and counts worked out by hand."""

from datetime import UTC, datetime

import pytest

from workflows.care.messaging import ReplyKind, classify, segments, send_window


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", ReplyKind.OPT_OUT),
        ("  stop \n", ReplyKind.OPT_OUT),
        ("StopAll", ReplyKind.OPT_OUT),
        ("unsubscribe", ReplyKind.OPT_OUT),
        ("Cancel", ReplyKind.OPT_OUT),
        ("end", ReplyKind.OPT_OUT),
        ("QUIT", ReplyKind.OPT_OUT),
        ("START", ReplyKind.OPT_IN),
        ("unstop", ReplyKind.OPT_IN),
        ("help", ReplyKind.HELP),
        ("INFO", ReplyKind.HELP),
        ("1", ReplyKind.CONFIRM),
        ("yes", ReplyKind.CONFIRM),
        ("2", ReplyKind.CALL_BACK),
        ("please stop texting me", ReplyKind.OTHER),  # a keyword is the whole body
        ("stop.", ReplyKind.OTHER),
        ("12", ReplyKind.OTHER),
        ("", ReplyKind.OTHER),
    ],
)
def test_classify(body: str, kind: ReplyKind) -> None:
    assert classify(body) == kind


def test_yes_opts_back_in_only_when_opted_out() -> None:
    assert classify("YES", opted_out=True) == ReplyKind.OPT_IN
    assert classify("1", opted_out=True) == ReplyKind.CONFIRM
    assert classify("Yes", opted_out=False) == ReplyKind.CONFIRM


@pytest.mark.parametrize(
    ("moment", "timezone", "expected"),
    [
        # 10:00 in New York (EST, UTC-5) is inside the window: now.
        ("2026-12-01T15:00:00+00:00", "America/New_York", "2026-12-01T15:00:00+00:00"),
        # 07:59 in New York: wait for 08:00 the same day, 13:00 UTC.
        ("2026-12-01T12:59:00+00:00", "America/New_York", "2026-12-01T13:00:00+00:00"),
        # 21:00 sharp is quiet: 08:00 next morning.
        ("2026-12-02T02:00:00+00:00", "America/New_York", "2026-12-02T13:00:00+00:00"),
        # 20:59 still goes.
        ("2026-12-02T01:59:00+00:00", "America/New_York", "2026-12-02T01:59:00+00:00"),
        # The same instant is 18:00 in Los Angeles (PST, UTC-8): fine there.
        ("2026-12-02T02:00:00+00:00", "America/Los_Angeles", "2026-12-02T02:00:00+00:00"),
        # 23:30 PST on Saturday 13 March 2027; DST starts at 02:00 on Sunday 14 March (the
        # second Sunday), so 08:00 that morning is PDT (UTC-7), 15:00 UTC, not 16:00.
        ("2027-03-14T07:30:00+00:00", "America/Los_Angeles", "2027-03-14T15:00:00+00:00"),
        # 21:30 EDT on Saturday 6 November 2027; DST ends at 02:00 on Sunday 7 November, so
        # 08:00 that morning is EST, 13:00 UTC (not 12:00 as it would be in EDT).
        ("2027-11-07T01:30:00+00:00", "America/New_York", "2027-11-07T13:00:00+00:00"),
        # Honolulu has no DST (UTC-10): 05:00 local waits for 08:00, 18:00 UTC.
        ("2026-12-01T15:00:00+00:00", "Pacific/Honolulu", "2026-12-01T18:00:00+00:00"),
    ],
)
def test_send_window(moment: str, timezone: str, expected: str) -> None:
    window = send_window(datetime.fromisoformat(moment), timezone)
    assert window.astimezone(UTC) == datetime.fromisoformat(expected)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),  # 153 per segment once split
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets: 160
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM basic set
        ("ó" * 70, 1),  # ó is not: UCS-2, 70 in one
        ("ó" * 71, 2),
        # One non-GSM character makes the whole text UCS-2: 135 units, 67 a segment: 3.
        ("a" * 134 + "ó", 3),
    ],
)
def test_segments(text: str, count: int) -> None:
    assert segments(text) == count
