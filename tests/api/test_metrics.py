"""Metrics over a small population run on time-skipping Temporal, answers worked out by hand."""

from __future__ import annotations

from datetime import timedelta

from activities.ledger.metrics import MetricsQuery, compute
from api.routes.metrics import LedgerCollector
from tests.postgres import on_both_databases
from tests.workflows.referral_kit import COORDINATOR, open_referral, running
from workflows.referral.models import Assign, Cancel, MarkCompleted, MarkNoShow, MarkScheduled
from workflows.referral.workflow import ReferralWorkflow as W

pytestmark = on_both_databases

DAY = timedelta(days=1)


async def test_metrics_of_a_known_population(time_skipping, client, engine, task_queue):
    env = time_skipping
    async with running(client, engine, task_queue):
        a, b, c, d = [await open_referral(client, task_queue) for _ in range(4)]
        for handle in (a, b, d):
            await handle.execute_update(W.assign, Assign(actor=COORDINATOR))
        opened = (await a.query(W.detail)).opened_at

        async def schedule(handle, visit_in_days: int, ref: str) -> None:
            visit = await env.get_current_time() + visit_in_days * DAY
            await handle.execute_update(
                W.mark_scheduled,
                MarkScheduled(
                    actor=COORDINATOR, appointment=f"Appointment/{ref}", appointment_at=visit
                ),
            )

        async def complete(handle) -> None:
            await handle.execute_update(
                W.mark_completed, MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r")
            )

        await env.sleep(DAY)  # day 1
        await schedule(a, 2, "a")
        await d.execute_update(W.cancel, Cancel(actor=COORDINATOR, reason="Ordered twice"))
        await env.sleep(DAY)  # day 2
        await schedule(b, 2, "b1")
        await env.sleep(2 * DAY)  # day 4
        await complete(a)
        await env.sleep(DAY)  # day 5: B missed its visit on day 4
        await b.execute_update(W.mark_no_show, MarkNoShow(actor=COORDINATOR))
        await env.sleep(DAY)  # day 6
        await schedule(b, 2, "b2")
        await env.sleep(3 * DAY)  # day 9
        await complete(b)
        now = await env.get_current_time()

    (team,) = compute(engine, MetricsQuery(team="cardiology", group_by=["team"]), now=now)
    assert team.group == {"team": "cardiology"}
    assert (team.cases_opened, team.completed, team.closed, team.open) == (4, 2, 3, 1)
    assert team.completion_rate == 0.5  # A and B of four
    assert team.on_time_rate == 1.0  # neither completed case was escalated
    assert team.exception_rate == 0.25  # C, never claimed, escalated
    assert team.documentation_completeness == 1.0
    assert (team.rework_loops, team.cases_with_rework) == (1, 1)  # B's no-show
    assert team.unowned_open == 1
    assert team.queue_aging == {"0-2d": 0, "2-7d": 0, "7-14d": 1, "14d+": 0}
    # Scheduled after 24 h (A) and 48 h (B); completed after 96 h (A) and 216 h (B).
    assert (team.time_to_schedule_hours.median, team.time_to_schedule_hours.p90) == (36.0, 45.6)
    assert (team.time_to_completion_hours.median, team.time_to_completion_hours.p90) == (
        156.0,
        204.0,
    )
    assert team.time_unowned_hours.count == 3 and team.time_unowned_hours.median == 0.0

    # All four opened in the same ISO week, named as the summary names it.
    (week,) = compute(engine, MetricsQuery(group_by=["week"]), now=now)
    year, number, _ = opened.isocalendar()
    assert week.group == {"week": f"{year}-W{number:02d}"}
    assert (week.cases_opened, week.completed) == (4, 2)

    assert compute(engine, MetricsQuery(team="imaging")) == []
    later = compute(engine, MetricsQuery(since=now), now=now)
    assert later == []

    families = {family.name: family for family in LedgerCollector(engine).collect()}
    completed = families["followthrough_cases_completed"].samples
    assert [(s.labels["team"], s.value) for s in completed] == [("cardiology", 2.0)]
