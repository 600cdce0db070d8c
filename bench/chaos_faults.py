"""The faults of a chaos run, while its traffic flows: the worker SIGKILLed and restarted every few
seconds, the Temporal dev server killed and restarted once, the EHR down for a while, and an API
process killed in the middle of requests. Each fault is logged with when it hit, when the part
was back, and (from the traffic's successes) when work through that part succeeded again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.chaos_stack import ChaosStack, now
from bench.chaos_traffic import Book


@dataclass
class Fault:
    kind: str  # worker killed, temporal restarted, ehr down, api killed
    hit: float
    back: float | None = None
    recovered: float | None = None  # the first success through the part after it was back

    @property
    def outage(self) -> float:
        return (self.back or self.hit) - self.hit

    @property
    def recovery(self) -> float | None:
        return None if self.recovered is None or self.back is None else self.recovered - self.back


@dataclass
class FaultPlan:
    kill_worker_every: float = 15.0  # seconds between worker kills (0: never)
    ehr_outage: float = 15.0  # seconds the EHR stays down (0: never down)
    # When each one-off fault hits, as the share of the cases opened so far.
    api_kill_at: float = 0.2
    temporal_restart_at: float = 0.4
    ehr_down_at: float = 0.6


@dataclass
class Faults:
    stack: ChaosStack
    book: Book
    plan: FaultPlan
    say: Callable[[str], None]
    # How many accepted claims still wait for the EHR to verify them (scheduled, not yet so).
    unverified: Callable[[], Awaitable[int]]
    log: list[Fault] = field(default_factory=list)
    # One fault at a time: a worker started while Temporal is down would not come up.
    breaking: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, traffic_done: asyncio.Event) -> None:
        """Break things until the traffic is done; every part is up again when this returns. The
        worker dies on its schedule, the other faults when their share of cases is open."""
        await asyncio.gather(self._one_offs(traffic_done), self._worker_kills(traffic_done))

    async def _one_offs(self, traffic_done: asyncio.Event) -> None:
        one_offs = [
            (self.plan.api_kill_at, self._kill_api),
            (self.plan.temporal_restart_at, self._restart_temporal),
            *([(self.plan.ehr_down_at, self._ehr_down)] if self.plan.ehr_outage else []),
        ]
        while one_offs and not traffic_done.is_set():
            if len(self.book.opened) / max(1, self.book.cases) >= one_offs[0][0]:
                _, fault = one_offs.pop(0)
                async with self.breaking:
                    await fault()
            else:
                await _until(traffic_done, 0.1)

    async def _worker_kills(self, traffic_done: asyncio.Event) -> None:
        if not self.plan.kill_worker_every:
            return
        while not await _until(traffic_done, self.plan.kill_worker_every):
            async with self.breaking:
                await self._kill_worker()

    async def _kill_worker(self) -> None:
        fault = Fault("worker killed", now())
        self.stack.kill(self.stack.worker)
        await asyncio.sleep(0.5)
        self.stack.start_worker()
        fault.back = now()
        self.log.append(fault)
        # Held under the lock until it polls: Temporal restarted while a worker connects would
        # leave no worker at all (it exits), and the run with nothing moving.
        await self.stack.worker_polling()

    async def _kill_api(self) -> None:
        """API 1 is killed while requests are in flight on it (waited for, up to 10 s)."""
        for _ in range(1000):
            if self.book.in_flight[1]:
                break
            await asyncio.sleep(0.01)
        fault = Fault("api killed", now())
        in_flight = self.book.in_flight[1]
        self.stack.kill(self.stack.apis[1])
        self.say(f"API process killed with {in_flight} requests in flight")
        await asyncio.sleep(1)
        await self.stack.start_api(1)
        fault.back = now()
        self.log.append(fault)

    async def _restart_temporal(self) -> None:
        fault = Fault("temporal restarted", now())
        self.stack.kill(self.stack.temporal)
        self.say("Temporal dev server killed; restarting it on its database")
        await asyncio.sleep(1)
        await self.stack.start_temporal()
        fault.back = now()
        self.log.append(fault)

    async def _ehr_down(self) -> None:
        fault = Fault("ehr down", now())
        self.stack.kill(self.stack.ehr)
        self.say(f"EHR sandbox down for {self.plan.ehr_outage:.0f}s")
        await asyncio.sleep(self.plan.ehr_outage)
        await self.stack.start_ehr()
        fault.back = now()
        self.log.append(fault)
        # Recovered once every claim that waited on the EHR is verified (its retries back off up
        # to two minutes, so this can take that long).
        for _ in range(300):
            if not await self.unverified():
                fault.recovered = now()
                break
            await asyncio.sleep(1)

    def measure_recovery(self) -> None:
        """For each fault, the first success after it was back through what it broke: an action
        or a case read (worker; the check's reads measure a kill as the traffic ended), an action
        or an opening (Temporal), a request to the killed API. (The EHR's is measured as it comes
        back.) Call it once the check has read the cases."""
        through = {
            "worker killed": lambda kind, api: kind in ("action", "read"),
            "temporal restarted": lambda kind, api: kind in ("action", "open"),
            "api killed": lambda kind, api: api == 1,
        }
        for fault in self.log:
            if fault.kind not in through:
                continue
            passes = through[fault.kind]
            fault.recovered = next(
                (
                    at
                    for at, kind, api in sorted(self.book.successes)
                    if fault.back is not None and at >= fault.back and passes(kind, api)
                ),
                None,
            )


async def _until(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; whether it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
