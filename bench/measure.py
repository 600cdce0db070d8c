"""Timing primitives: closed-loop throughput, one-at-a-time latency, percentiles."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Job = Callable[[int], Awaitable[object]]


@dataclass
class Throughput:
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def throughput(count: int, concurrency: int, job: Job, start: int = 0) -> Throughput:
    """Run `job(i)` for i in [start, start+count) from `concurrency` closed loops: each loop sends
    its next request only when the previous one answered, as a fixed pool of clients would."""
    indexes = iter(range(start, start + count))

    async def loop() -> None:
        for index in indexes:  # shared iterator: each index is taken by exactly one loop
            await job(index)

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(loop())
    return Throughput(count, time.perf_counter() - began)


async def latencies(count: int, job: Job, start: int = 0) -> list[float]:
    """Seconds each `job(i)` took, one at a time, so no request queues behind another."""
    samples = []
    for index in range(start, start + count):
        began = time.perf_counter()
        await job(index)
        samples.append(time.perf_counter() - began)
    return samples


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
