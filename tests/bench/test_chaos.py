"""The chaos run, short: a few dozen referral cases through two API processes while the worker is
killed every few seconds, Temporal restarts, the EHR goes down and an API process dies mid-request.
Nothing the API accepted may be lost, doubled or left in the wrong stage, and every case must
read back from a worker started afresh (its history replays)."""

from __future__ import annotations

from bench.chaos import ChaosOptions, run
from bench.chaos_faults import FaultPlan
from bench.stack import Stack


async def test_nothing_accepted_is_lost_through_kills_restarts_and_outages() -> None:
    stack = Stack.create()
    plan = FaultPlan(kill_worker_every=4, ehr_outage=3)
    try:
        report = await run(ChaosOptions(cases=12, concurrency=12, faults=plan), stack, print)
    finally:
        stack.close()
    print(report.render())
    verdict, book = report.verdict, report.book
    assert len(book.opened) == 12 and book.unanswered == 0
    assert book.actions >= 12 * 3  # opened, claimed, noted, then scheduled / cancelled / noted
    assert (verdict.lost, verdict.duplicated, verdict.wrong_stage) == ([], [], [])
    assert verdict.broken_chains == [] and verdict.unreadable == []
    assert set(book.server_errors) <= {503}  # "try again shortly", never a 500
    assert report.count("worker killed") >= 2
    for kind in ("temporal restarted", "api killed", "ehr down"):
        assert report.count(kind) == 1, kind
    assert all(fault.recovered is not None for fault in report.faults), report.faults
