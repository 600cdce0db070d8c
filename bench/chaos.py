"""`python -m bench.chaos`: referral cases driven through the API while the parts fail.

N cases (1,000 by default) are opened, claimed, noted, scheduled or cancelled through two API
processes, with actions arriving concurrently, while the worker is SIGKILLed and restarted every
few seconds, the Temporal dev server is killed and restarted once, the EHR sandbox is down for a
while and an API process is killed mid-request. Then every case is checked against the actions
the API accepted (bench/chaos_check.py) and the figures are printed; the exit status is 1 when
anything was lost, duplicated or left in the wrong stage.

`--soak MINUTES` runs steady load instead, without faults, and samples the memory and open file
descriptors of the API, the worker and the dev server (bench/soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import httpx

from bench.chaos_check import Verdict, check, reread
from bench.chaos_faults import Fault, FaultPlan, Faults
from bench.chaos_stack import ChaosStack, now
from bench.chaos_traffic import Book, Traffic
from bench.cli import Progress, interruptible
from bench.stack import Stack
from workers.database import make_engine
from workflows.care.models import Role


@dataclass
class ChaosOptions:
    cases: int = 1000
    concurrency: int = 24
    faults: FaultPlan = field(default_factory=FaultPlan)
    keep: bool = False


@dataclass
class ChaosReport:
    book: Book
    faults: list[Fault]
    verdict: Verdict
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict.clean and len(self.book.opened) == self.book.cases

    def count(self, kind: str) -> int:
        return sum(fault.kind == kind for fault in self.faults)

    def render(self) -> str:
        book, verdict = self.book, self.verdict
        outage = {kind: sum(f.outage for f in self.faults if f.kind == kind) for kind in KINDS}
        rows = [
            ("cases opened", f"{len(book.opened):,} of {book.cases:,}"),
            ("actions accepted", f"{book.actions:,}"),
            ("requests retried", f"{book.retries:,}"),
            (
                "answers 5xx (retried)",
                ", ".join(f"{n} x {s}" for s, n in sorted(book.server_errors.items())) or "none",
            ),
            ("requests given up", f"{book.unanswered:,}"),
            ("worker kills", f"{self.count('worker killed')}"),
            ("Temporal restarts", f"{self.count('temporal restarted')}"),
            ("API processes killed", f"{self.count('api killed')}"),
            ("EHR outage", f"{outage['ehr down']:.1f} s"),
            ("Temporal down", f"{outage['temporal restarted']:.1f} s"),
            ("escalations fired", f"{verdict.escalations}"),
            ("lost", f"{len(verdict.lost)}"),
            ("duplicated", f"{len(verdict.duplicated)}"),
            ("wrong stage", f"{len(verdict.wrong_stage)}"),
            ("chains that do not verify", f"{len(verdict.broken_chains)}"),
            ("unreadable from a fresh worker", f"{len(verdict.unreadable)}"),
            ("run", f"{self.seconds:.0f} s, settled {verdict.settled_in:.0f} s after"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.append("")
        lines.append(
            "time to recover, from the part back to the first success through it (the EHR: "
            "until every claim that waited on it is verified):"
        )
        for kind in KINDS:
            times = [f.recovery for f in self.faults if f.kind == kind]
            known = sorted(t for t in times if t is not None)
            if not times:
                continue
            spread = (
                f"median {known[len(known) // 2]:.1f} s, max {known[-1]:.1f} s"
                if known
                else "no success after it"
            )
            lines.append(f"  {kind:<20} x{len(times):<3} {spread}")
        for problem in (verdict.lost + verdict.duplicated + verdict.wrong_stage)[:20]:
            lines.append(f"  ! {problem}")
        for problem in verdict.broken_chains[:5]:
            lines.append(f"  ! chain {problem}")
        for problem in verdict.unreadable[:5]:
            lines.append(f"  ! unreadable {problem}")
        return "\n".join(lines)


KINDS = ("worker killed", "temporal restarted", "api killed", "ehr down")


async def _progress(book: Book, faults: Faults, say: Progress, done: asyncio.Event) -> None:
    """Where the traffic is, every ten seconds."""
    while True:
        try:
            await asyncio.wait_for(done.wait(), 10)
            return
        except TimeoutError:
            say(
                f"{len(book.opened):,} cases opened, {book.actions:,} actions accepted, "
                f"{len(faults.log)} faults so far"
            )


def evening_timezone(moment: datetime) -> str:
    """A zone where `moment` is a weekday evening: a stat order there is due at close of business
    today, already past, so its escalation fires during the run (to be checked for doubles).
    The clinic's own zone when no zone qualifies (a weekend everywhere)."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{'+' if offset <= 0 else '-'}{abs(offset)}"  # POSIX signs are inverted
        local = moment.astimezone(ZoneInfo(name))
        if local.weekday() < 5 and time(17, 30) <= local.time() <= time(23, 0):
            return name
    return "America/New_York"


async def run(options: ChaosOptions, stack: Stack, say: Progress) -> ChaosReport:
    chaos = ChaosStack(stack, clinic_timezone=evening_timezone(datetime.now(UTC)))
    say(f"starting Temporal, the EHR sandbox, a worker and two API processes ({stack.home})")
    await chaos.start()
    admin = chaos.token("chaos-admin", Role.ADMIN)
    coordinator = chaos.token("chaos-cora", Role.COORDINATOR, "cardiology")
    book = Book(run=f"c{uuid.uuid4().hex[:6]}", cases=options.cases)
    traffic = Traffic(book, chaos.api_urls, chaos.fhir_url, coordinator, admin)
    probe = httpx.AsyncClient(base_url=chaos.api_urls[0], timeout=30)

    async def unverified() -> int:
        """Cases whose accepted scheduling the EHR has not verified yet."""
        waiting = 0
        for case_id, accepted in list(book.accepted.items()):
            if any(action.action == "mark-scheduled" for action in accepted):
                try:
                    case = await probe.get(f"/api/v1/cases/{case_id}", headers=admin)
                    waiting += case.status_code != 200 or case.json()["stage"] != "scheduled"
                except httpx.HTTPError:
                    waiting += 1
        return waiting

    faults = Faults(chaos, book, options.faults, say, unverified)
    try:
        say(f"seeding {options.cases:,} patients and orders in the EHR")
        await traffic.seed()
        say(f"driving {options.cases:,} cases, {options.concurrency} at a time, through faults")
        began, done = now(), asyncio.Event()
        breaking = asyncio.create_task(faults.run(done))
        telling = asyncio.create_task(_progress(book, faults, say, done))
        try:
            await traffic.drive(options.concurrency)
        finally:
            done.set()
            await breaking
            await telling
        seconds = now() - began
        say("checking every case against what the API accepted")
        engine = make_engine(chaos.database_url, migrate=False)
        async with httpx.AsyncClient(base_url=chaos.api_urls[0], timeout=60) as http:
            verdict = await check(http, engine, book, admin)
            faults.measure_recovery()
            say("restarting the worker with an empty cache; reading every case again")
            chaos.kill(chaos.worker)
            chaos.start_worker()
            await chaos.worker_polling()
            await reread(http, verdict, book, admin)
        engine.dispose()
    finally:
        await traffic.close()
        await probe.aclose()
    return ChaosReport(book, faults.log, verdict, seconds)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument(
        "--kill-every",
        type=float,
        default=15.0,
        help="seconds between worker kills (a worker takes 10-30 s to recover from one: much "
        "more often and nothing moves)",
    )
    parser.add_argument("--ehr-outage", type=float, default=15.0, help="seconds the EHR is down")
    parser.add_argument("--soak", type=float, default=0, help="minutes of steady load instead")
    parser.add_argument("--rate", type=float, default=2.0, help="soak: cases opened per second")
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    say = Progress()
    stack = Stack.create(keep=args.keep)

    async def measured():
        if args.soak:
            from bench.soak import soak

            return await soak(stack, say, minutes=args.soak, rate=args.rate)
        faults = FaultPlan(kill_worker_every=args.kill_every, ehr_outage=args.ehr_outage)
        options = ChaosOptions(args.cases, args.concurrency, faults, args.keep)
        return await run(options, stack, say)

    report = interruptible(stack, say, measured)
    if report is None:
        return 130
    print(report.render())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
