"""Prior-authorization metrics from the ledger: a small population of requests and decisions,
each answer worked out by hand."""

from __future__ import annotations

import uuid

from activities.ledger.metrics import MetricsQuery, compute
from tests.activities import ledger_cases
from tests.activities.ledger_cases import HOUR, START, Event
from tests.postgres import on_both_databases
from workflows.care.models import EventKind

pytestmark = on_both_databases


def write_case(engine, team: str, events: list[Event]) -> None:
    ledger_cases.write_case(
        engine,
        team,
        events,
        case_type="prior_auth",
        opened_in="collecting",
        closing=("delivered", "cancelled", "closed_denied"),
    )


def submitted(hours: float, n: int = 1):
    return (hours, EventKind.SUBMITTED, {"submission": str(n)}, "submitted")


def decided(hours: float, decision: str, stage: str, reason: str | None = None):
    details = {"decision": decision, **({"reason": reason} if reason else {})}
    return (hours, EventKind.DECIDED, details, stage)


def test_time_to_decision_first_pass_pended_denials_and_lapses(engine):
    team = f"auth-{uuid.uuid4().hex[:6]}"
    # A: submitted at 2 h, approved at 12 h: 10 h to decision, first pass.
    write_case(engine, team, [submitted(2), decided(12, "approved", "approved")])
    # B: submitted at 1 h, pended at 1 h, denied at 49 h (48 h), appealed, approved on the
    # second request; its first pass was a denial.
    write_case(
        engine,
        team,
        [
            submitted(1),
            decided(1, "pended", "pended"),
            decided(49, "denied", "denied", "N: Not medically necessary"),
            submitted(60, 2),
            decided(70, "approved", "approved"),
        ],
    )
    # C: approved at 4 h (submitted at 0 h), then the approval lapsed unused.
    write_case(
        engine,
        team,
        [
            submitted(0),
            decided(4, "approved", "approved"),
            (2000, EventKind.LAPSED, {}, "collecting"),
        ],
    )
    # D: submitted at 3 h and pended ever since; E: never submitted.
    write_case(engine, team, [submitted(3), decided(3, "pended", "pended")])
    write_case(engine, team, [])
    now = START + 3 * HOUR + 100 * HOUR  # D has waited 100 h: the 3-7 day bucket

    (group,) = compute(engine, MetricsQuery(team=team, group_by=["team"]), now=now)
    auth = group.authorizations
    assert auth is not None
    assert (auth.requested, auth.decided) == (4, 3)  # A, B, C decided; D pended; E not sent
    assert auth.first_pass_approval_rate == round(2 / 3, 4)  # A and C of A, B, C
    assert auth.time_to_decision_hours.count == 3
    assert auth.time_to_decision_hours.median == 10.0  # of 4, 10 and 48 h
    assert auth.pended == 1
    assert auth.pended_aging == {"0-24h": 0, "1-3d": 0, "3-7d": 1, "7d+": 0}
    assert auth.denial_reasons == {"N: Not medically necessary": 1}
    assert auth.lapsed_unused == 1


def test_groups_without_payer_requests_have_no_authorization_figures(engine):
    team = f"auth-{uuid.uuid4().hex[:6]}"
    write_case(engine, team, [])
    (group,) = compute(engine, MetricsQuery(team=team, group_by=["team"]))
    assert group.authorizations is None
