"""Metrics over a large ledger: 1,000,000 events for 100,000 cases, on SQLite and on
PostgreSQL (a throwaway server on loopback), in one run.

Part of `python -m bench` (`--ledger-cases`), or alone: `python -m bench.ledger_metrics
[--cases N] [--db PATH]`. The ledger and its per-case summary are filled with
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from activities.ledger.metrics import MetricsQuery, compute
from activities.ledger.tables import CaseSummary, LedgerRow, iso_week
from bench.report import Report, Row
from workers.database import make_engine
from workers.postgres import new_database, postgres_server

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
                "opened_week": iso_week(opened),
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


QUERIES = {
    "all cases, by team": lambda now: MetricsQuery(group_by=["team"]),
    "by case type and week": lambda now: MetricsQuery(group_by=["case_type", "week"]),
    "one team, last 90 days": lambda now: MetricsQuery(
        team="cardiology", since=now - timedelta(days=90)
    ),
    "by team and location": lambda now: MetricsQuery(group_by=["team", "location"]),
}


@dataclass
class LedgerTimes:
    events: int
    cases: int
    fill_seconds: float
    baseline: list[float]  # ms per run of the least any metric costs
    queries: dict[str, list[float]]  # ms per run of each metrics request


def measure_both(cases: int, runs: int, path: Path) -> dict[str, LedgerTimes]:
    """The same ledger and requests on SQLite (at `path`, reused when there) and PostgreSQL."""
    times = {"sqlite": measure(cases, runs, f"sqlite:///{path}", reuse=path.exists())}
    with postgres_server() as server:
        times["postgresql"] = measure(cases, runs, new_database(server))
    return times


def measure(cases: int, runs: int, url: str, *, reuse: bool = False) -> LedgerTimes:
    """Fill a ledger in the database at `url` (or count the one there) and time the metrics."""
    engine = make_engine(url)
    started = time.perf_counter()
    if reuse:
        with engine.connect() as connection:
            events = connection.execute(select(func.count()).select_from(LedgerRow)).one()[0]
            cases = connection.execute(select(func.count()).select_from(CaseSummary)).one()[0]
    else:
        events = synthesize(engine, cases)
    fill_seconds = time.perf_counter() - started
    now = START + timedelta(days=320)
    with engine.connect() as connection:

        def count_by_team() -> None:
            connection.execute(
                select(CaseSummary.team, func.count()).group_by(CaseSummary.team)
            ).all()

        baseline = timed(count_by_team, runs)
    queries = {
        name: timed(lambda q=query(now): compute(engine, q, now=now), runs)
        for name, query in QUERIES.items()
    }
    engine.dispose()
    return LedgerTimes(events, cases, fill_seconds, baseline, queries)


def rows(times: LedgerTimes, database: str) -> list[Row]:
    """Each request's median and the slowest run of all against the 500 ms target, with the
    ratio to the baseline measured on the same database."""
    base = statistics.median(times.baseline)
    result = [
        Row(f"(f) {database}: ledger size", times.events, "events"),
        Row(f"(f) {database}: ledger size", times.cases, "cases"),
        Row(f"(f) {database}: ledger written in", times.fill_seconds, "s"),
        Row(f"(f) {database}: baseline, cases by team, median", base, "ms"),
    ]
    for name, samples in times.queries.items():
        median = statistics.median(samples)
        result.append(Row(f"(f) {database}: metrics {name}, median", median, "ms"))
    slowest = max(max(samples) for samples in times.queries.values())
    slowest_median = max(statistics.median(samples) for samples in times.queries.values())
    result += [
        Row(f"(f) {database}: metrics, slowest run of all", slowest, "ms", ("<=", 500.0)),
        Row(f"(f) {database}: ratio slowest median/baseline median", slowest_median / base, "x"),
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--db", type=Path, help="keep the ledger in this file and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = measure_both(args.cases, args.runs, args.db or Path(folder) / "ledger.db")
    report = Report("Followthrough ledger metrics on SQLite and PostgreSQL")
    for database, measured in times.items():
        report.add(*rows(measured, database))
    print(report.render())


if __name__ == "__main__":
    main()
