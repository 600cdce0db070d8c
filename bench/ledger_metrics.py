"""Metrics over a large ledger: 1,000,000 events for 100,000 cases, on SQLite, in one run.

`python -m bench.ledger_metrics [--cases N]`. The ledger and its per-case summary are filled with
synthetic cases (about ten events each); hashes are placeholders, as metrics never read them.
The baseline, in the same database, is the least any metric costs: one GROUP BY team over the
per-case summary.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from activities.ledger.metrics import MetricsQuery, compute
from activities.ledger.tables import CaseSummary, LedgerRow
from workers.database import make_engine

TEAMS = ["cardiology", "imaging", "neurology", "oncology", "orthopedics"]
LOCATIONS = ["main-clinic", "north-clinic", "south-clinic"]
START = datetime(2026, 1, 5, tzinfo=UTC)


def synthesize(engine, cases: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    events, summaries, total = [], [], 0
    for n in range(cases):
        case_id = f"referral-bench-{n}"
        team, location = rng.choice(TEAMS), rng.choice(LOCATIONS)
        opened = START + timedelta(minutes=rng.randrange(0, 300 * 24 * 60))
        at = opened
        kinds = ["opened"]
        assigned = scheduled = closed = None
        if rng.random() < 0.9:
            at += timedelta(hours=rng.uniform(1, 72))
            assigned = at
            kinds += ["assigned", "stage_changed"]
        kinds += ["outreach"] * rng.randint(0, 3)
        escalated = rng.random() < 0.2
        kinds += ["note", "reminded"] + (["escalated"] if escalated else [])
        no_show = rng.random() < 0.1
        if assigned and rng.random() < 0.8:
            at += timedelta(hours=rng.uniform(24, 400))
            scheduled = at
            kinds += ["stage_changed"] + (["no_show", "stage_changed"] if no_show else [])
            kinds += ["stage_changed", "note", "note"]
            at += timedelta(hours=rng.uniform(24, 300))
            closed = at
            kinds += ["completed"]
        elif rng.random() < 0.3:
            closed = at + timedelta(hours=rng.uniform(1, 200))
            kinds += ["cancelled"]
        for seq, kind in enumerate(kinds, 1):
            events.append(
                {
                    "id": uuid.uuid4(),
                    "case_id": case_id,
                    "seq": seq,
                    "at": opened + timedelta(minutes=seq),
                    "kind": kind,
                    "actor": "system",
                    "role": "system",
                    "summary": kind,
                    "details": {},
                    "evidence": [],
                    "case_type": "referral",
                    "team": team,
                    "location": location,
                    "priority": "routine",
                    "pathway": "referral",
                    "pathway_version": "bench",
                    "case_closed": kind in ("completed", "cancelled"),
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                    "recorded_at": opened,
                    "stage_before": None,
                    "stage_after": None,
                }
            )
        summaries.append(
            {
                "case_id": case_id,
                "case_type": "referral",
                "team": team,
                "location": location,
                "priority": "routine",
                "opened_at": opened,
                "first_assigned_at": assigned,
                "first_scheduled_at": scheduled,
                "closed_at": closed,
                "closed_stage": kinds[-1] if closed else None,
                "completed": kinds[-1] == "completed",
                "escalations": int(escalated),
                "rework_loops": int(no_show and bool(scheduled)),
                "exceptions": 0,
                "evidence_on_file": kinds[-1] == "completed",
                "last_seq": len(kinds),
                "hours_unowned": _hours(opened, assigned),
                "hours_to_schedule": _hours(opened, scheduled),
                "hours_to_complete": _hours(opened, closed) if kinds[-1] == "completed" else None,
            }
        )
        if len(events) >= 50_000:
            total += _flush(engine, events, summaries)
    return total + _flush(engine, events, summaries)


def _hours(start: datetime, end: datetime | None) -> float | None:
    return (end - start).total_seconds() / 3600 if end else None


def _flush(engine, events: list, summaries: list) -> int:
    count = len(events)
    with engine.begin() as connection:
        if events:
            connection.execute(insert(LedgerRow.__table__), events)
        if summaries:
            connection.execute(insert(CaseSummary.__table__), summaries)
    events.clear()
    summaries.clear()
    return count


def timed(action, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--db", type=Path, help="keep the ledger in this file and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or Path(folder) / "ledger.db"
        reuse = path.exists()
        engine = make_engine(f"sqlite:///{path}")
        started = time.perf_counter()
        if reuse:
            with engine.connect() as connection:
                events = connection.execute(select(func.count()).select_from(LedgerRow)).one()[0]
        else:
            events = synthesize(engine, args.cases)
        print(
            f"ledger: {events:,} events for {args.cases:,} cases "
            f"(written in {time.perf_counter() - started:.0f} s)"
        )
        now = START + timedelta(days=320)
        with engine.connect() as connection:

            def count_by_team() -> None:
                connection.execute(
                    select(CaseSummary.team, func.count()).group_by(CaseSummary.team)
                ).all()

            baseline = timed(count_by_team, args.runs)
        queries = {
            "all cases, by team": MetricsQuery(group_by=["team"]),
            "by case type and week": MetricsQuery(group_by=["case_type", "week"]),
            "one team, last 90 days": MetricsQuery(
                team="cardiology", since=now - timedelta(days=90)
            ),
            "by team and location": MetricsQuery(group_by=["team", "location"]),
        }
        base_median = statistics.median(baseline)
        print(f"{'measure':32} {'median ms':>10} {'max ms':>8} {'x baseline':>11}")
        print(f"{'baseline: cases by team':32} {base_median:10.1f} {max(baseline):8.1f} {1:11.2f}")
        worst = 0.0
        for name, query in queries.items():
            samples = timed(lambda q=query: compute(engine, q, now=now), args.runs)
            worst = max(worst, max(samples))
            print(
                f"{'metrics: ' + name:32} {statistics.median(samples):10.1f} "
                f"{max(samples):8.1f} {statistics.median(samples) / base_median:11.2f}"
            )
        print(
            f"target: metrics <= 500 ms -> {'PASS' if worst <= 500 else 'MISS'} "
            f"(slowest run {worst:.0f} ms)"
        )


if __name__ == "__main__":
    main()
