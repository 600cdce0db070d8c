"""Outreach metrics from the ledger: four referral cases' messages, replies and opt-outs, each
answer worked out by hand."""

from __future__ import annotations

import uuid

from activities.ledger.metrics import MetricsQuery, compute
from tests.activities import ledger_cases
from tests.activities.ledger_cases import Event
from tests.postgres import on_both_databases
from workflows.care.models import EventKind

pytestmark = on_both_databases


def write_case(engine, team: str, events: list[Event]) -> None:
    ledger_cases.write_case(
        engine, team, events, case_type="referral", opened_in="awaiting_scheduling"
    )


def message(hours: float, channel: str, status: str = "sent", n: int = 1):
    details = {"attempt": f"m{n}", "channel": channel, "status": status, "kind": "schedule"}
    return (hours, EventKind.OUTREACH, details, None)


def delivery(hours: float, channel: str, status: str, n: int = 1):
    details = {"attempt": f"m{n}", "channel": channel, "status": status, "error_code": ""}
    return (hours, EventKind.DELIVERY, details, None)


def reply(hours: float, kind: str, channel: str = "sms"):
    return (hours, EventKind.REPLY, {"attempt": "m1", "channel": channel, "reply": kind}, None)


def scheduled(hours: float):
    return (hours, EventKind.STAGE_CHANGED, {}, "scheduled")


def test_reach_by_channel_replies_opt_outs_and_time_to_schedule(engine):
    team = f"ref-{uuid.uuid4().hex[:6]}"
    # A: a text at 1 h, delivered; an email at 73 h; the patient answers "1" at 80 h; the visit
    # is booked at 90 h: 89 h from the first message.
    write_case(
        engine,
        team,
        [
            message(1, "sms"),
            delivery(1.1, "sms", "delivered"),
            message(73, "email", n=2),
            reply(80, "confirm"),
            scheduled(90),
        ],
    )
    # B: a text at 0.5 h that the carrier could not deliver, then an email that bounced; the
    # patient only asked for HELP, which is not a reply to the message.
    write_case(
        engine,
        team,
        [
            message(0.5, "sms"),
            delivery(0.6, "sms", "undelivered"),
            message(0.6, "email", n=2),
            delivery(2, "email", "failed", n=2),
            reply(3, "help"),
        ],
    )
    # C: opted out of texts (the send was refused, nothing went out), a portal message at 3 h,
    # a free-text reply at 5 h, booked at 27 h: 24 h from the first message.
    write_case(
        engine,
        team,
        [
            message(1, "sms", status="opted_out"),
            (1, EventKind.CONSENT, {"channel": "sms", "consent": "opted_out"}, None),
            message(3, "portal", n=2),
            reply(5, "other", channel="portal"),
            scheduled(27),
        ],
    )
    # D: a call a coordinator recorded by hand is not a message; booked at 5 h.
    write_case(
        engine,
        team,
        [(2, EventKind.OUTREACH, {"channel": "phone", "outcome": "reached"}, None), scheduled(5)],
    )

    (group,) = compute(engine, MetricsQuery(team=team))
    assert group.cases_opened == 4
    outreach = group.outreach
    assert outreach is not None
    assert outreach.messaged == 3  # A, B, C
    sms, email, portal = (outreach.by_channel[c] for c in ("sms", "email", "portal"))
    assert (sms.sent, sms.reached, sms.reach_rate) == (2, 1, 0.5)  # A delivered, B not
    assert (email.sent, email.reached, email.reach_rate) == (2, 1, 0.5)  # B's bounced
    assert (portal.sent, portal.reached, portal.reach_rate) == (1, 1, 1.0)
    assert (outreach.replied, outreach.reply_rate) == (2, 0.6667)  # A and C of 3
    assert outreach.opted_out == 1
    spread = outreach.time_first_message_to_schedule_hours
    # A 89 h and C 24 h: the median halfway, 56.5; p90 is 24 + 0.9 x 65 = 82.5.
    assert (spread.count, spread.median, spread.p90) == (2, 56.5, 82.5)


def test_no_messages_no_outreach_figures(engine):
    team = f"ref-{uuid.uuid4().hex[:6]}"
    write_case(engine, team, [scheduled(5)])
    (group,) = compute(engine, MetricsQuery(team=team))
    assert group.outreach is None
