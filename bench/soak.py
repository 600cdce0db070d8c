"""Soak: minutes of steady load, no faults, while the resident memory and open file descriptors of
the API, the worker and the Temporal dev server are sampled. It fails on growth past the bounds.

The worker's workflow cache is set to 100 cases, so it fills within the warm-up (the first 40%
of the run); after it, memory should hold still. The bounds compare the last quarter of the
samples with the first quarter after the warm-up:
- resident memory: at most 10% + 20 MB more (a leak of a few KB per case shows at this rate);
- open file descriptors: at most 16 more (connections come and go; a leak only grows).
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from dataclasses import dataclass, field

import psutil

from bench.chaos_stack import ChaosStack, now
from bench.chaos_traffic import Book, Traffic
from bench.cli import Progress
from bench.stack import Stack
from workflows.care.models import Role

MB = 1024 * 1024
WARM_UP = 0.4
RSS_GROWTH, RSS_SLACK = 0.10, 20 * MB
FD_SLACK = 16
SAMPLE_EVERY = 5.0


@dataclass
class Samples:
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


@dataclass
class SoakReport:
    minutes: float
    rate: float
    cases: int
    samples: dict[str, Samples]

    def windows(self, values: list[int]) -> tuple[float, float]:
        """Median of the first quarter after the warm-up, and of the last quarter."""
        start = int(len(values) * WARM_UP)
        steady = values[start:]
        quarter = max(1, len(steady) // 4)
        return statistics.median(steady[:quarter]), statistics.median(steady[-quarter:])

    def verdicts(self) -> dict[str, tuple[bool, str]]:
        result = {}
        for name, sampled in self.samples.items():
            rss_then, rss_now = self.windows(sampled.rss)
            fds_then, fds_now = self.windows(sampled.fds)
            rss_ok = rss_now <= rss_then * (1 + RSS_GROWTH) + RSS_SLACK
            fds_ok = fds_now <= fds_then + FD_SLACK
            result[name] = (
                rss_ok and fds_ok,
                f"RSS {rss_then / MB:.0f} -> {rss_now / MB:.0f} MB"
                f" ({'ok' if rss_ok else 'GROWS'}), "
                f"fds {fds_then:.0f} -> {fds_now:.0f} ({'ok' if fds_ok else 'GROWS'})",
            )
        return result

    @property
    def passed(self) -> bool:
        return len(next(iter(self.samples.values())).rss) >= 8 and all(
            ok for ok, _ in self.verdicts().values()
        )

    def render(self) -> str:
        lines = [
            f"soak: {self.minutes:g} min at {self.rate:g} cases/s, {self.cases:,} cases, "
            f"{len(next(iter(self.samples.values())).rss)} samples every {SAMPLE_EVERY:.0f} s",
            f"bounds after a {WARM_UP:.0%} warm-up: RSS +{RSS_GROWTH:.0%} + "
            f"{RSS_SLACK // MB} MB, fds +{FD_SLACK}",
        ]
        for name, (ok, figures) in self.verdicts().items():
            lines.append(f"  {name:<9} {'pass' if ok else 'FAIL'}  {figures}")
        return "\n".join(lines)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def sample(pid: int) -> tuple[int, int]:
    rss = fds = 0
    for process in tree(pid):
        try:
            rss += process.memory_info().rss
            fds += process.num_fds()
        except psutil.NoSuchProcess:
            pass
    return rss, fds


async def soak(stack: Stack, say: Progress, *, minutes: float, rate: float) -> SoakReport:
    chaos = ChaosStack(stack, settings={"MAX_CACHED_WORKFLOWS": "100"})
    say(f"starting the stack for a {minutes:g}-minute soak at {rate:g} cases/s ({stack.home})")
    await chaos.start()
    admin = chaos.token("soak-admin", Role.ADMIN)
    coordinator = chaos.token("soak-cora", Role.COORDINATOR, "cardiology")
    cases = max(1, int(minutes * 60 * rate))
    book = Book(run=f"s{uuid.uuid4().hex[:6]}", cases=cases)
    traffic = Traffic(book, chaos.api_urls, chaos.fhir_url, coordinator, admin)
    watched = {"api": chaos.apis[0], "worker": chaos.worker, "temporal": chaos.temporal}
    samples = {name: Samples() for name in watched}
    try:
        await traffic.seed()
        driving = asyncio.create_task(traffic.drive(concurrency=64, pace=1 / rate))
        began = now()
        while not driving.done():
            for name, process in watched.items():
                rss, fds = sample(process.pid)
                samples[name].rss.append(rss)
                samples[name].fds.append(fds)
            say(
                f"{now() - began:5.0f}s {len(book.opened):,} cases; "
                + ", ".join(
                    f"{n} {s.rss[-1] / MB:.0f} MB/{s.fds[-1]} fds" for n, s in samples.items()
                )
            )
            await asyncio.wait([driving], timeout=SAMPLE_EVERY)
        await driving
    finally:
        await traffic.close()
    return SoakReport(minutes, rate, len(book.opened), samples)
