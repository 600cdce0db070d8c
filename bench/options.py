"""The command line: what to measure and how much of it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class Options:
    """How much of each measure; see `parse` for what each means."""

    cases: int
    api_cases: int
    baseline_n: int
    actions: int
    queue_requests: int
    concurrency: int
    fill_concurrency: int
    ledger_cases: int
    keep: bool

    @property
    def warmup(self) -> int:
        """Requests before each throughput is timed: two per client, so all have started."""
        return 2 * self.concurrency


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure the referral path against raw Temporal."
    )
    parser.add_argument("--cases", type=int, default=10_000, help="open cases for (d) and (e)")
    parser.add_argument(
        "--api-cases",
        type=int,
        default=2_000,
        help="cases opened through the API for (b); the rest are opened directly, faster",
    )
    parser.add_argument("--baseline-n", type=int, default=500, help="baseline workflows")
    parser.add_argument("--actions", type=int, default=300, help="add-note actions for (c)")
    parser.add_argument("--queue-requests", type=int, default=200, help="queue pages for (d)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients for (a) and (b)")
    parser.add_argument("--fill-concurrency", type=int, default=32)
    parser.add_argument(
        "--ledger-cases",
        type=int,
        default=100_000,
        help="cases (about ten ledger events each) for the metrics measure (f); 0 skips it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.api_cases, args.baseline_n = 300, 150, 100
        args.actions, args.queue_requests = 60, 50
        args.ledger_cases = min(args.ledger_cases, 5_000)
    warmup = 2 * args.concurrency
    if args.cases < warmup + 1:
        parser.error(f"--cases must be more than {warmup} (the warm-up cases)")
    options = Options(
        cases=args.cases,
        # The warm-up cases count among the open ones: all the rest may go through the API.
        api_cases=min(args.api_cases, args.cases - warmup),
        baseline_n=args.baseline_n,
        actions=args.actions,
        queue_requests=args.queue_requests,
        concurrency=args.concurrency,
        fill_concurrency=args.fill_concurrency,
        ledger_cases=args.ledger_cases,
        keep=args.keep,
    )
    return options
