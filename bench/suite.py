"""One benchmark run, phase by phase, on a stack of its own: what it measures, in which order."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from temporalio.client import Client

from api.auth import mint_token
from bench import history, ledger_metrics, scenarios
from bench.cpu import CpuMeter, CpuSplit
from bench.measure import percentile
from bench.options import Options
from bench.report import Report, Row
from bench.stack import Stack, rss_bytes
from workers import dev
from workers.client import connect
from workers.settings import Settings
from workflows.care.models import Role

MB = 1024 * 1024
# Above this share of the machine taken by other processes, a phase's figures are not clean.
BUSY_MACHINE = 0.10

Say = Callable[[str], None]


async def run(options: Options, stack: Stack, say: Say) -> Report:
    run_id = f"b{uuid.uuid4().hex[:6]}"
    report = Report(
        f"Followthrough benchmark: {options.cases:,} open cases (EHR link off), run {run_id}, "
        f"{_tree_state()}"
    )
    report.notes.append(
        "CPU time per item, by process ('others': processes this run did not start)"
    )

    # (a) on default SQLite first, alone on the machine, then stopped before anything else runs.
    say("(a) baseline on a dev server with SQLite defaults")
    server, address = await stack.temporal("temporal-default", tuned=False)
    worker = stack.baseline_worker(address, "baseline-default")
    default = await _baseline(options, await connect(address), run_id, server, worker)
    stack.stop(worker, server)

    say("(a) baseline on a dev server with the project's SQLite pragmas")
    server, address = await stack.temporal("temporal", tuned=True)
    worker = stack.baseline_worker(address, "baseline")
    client = await connect(address)
    tuned = await _baseline(options, client, run_id, server, worker)
    report.add(
        Row("(a) baseline workflows/s, tuned SQLite", tuned.rate, "wf/s"),
        Row("(a) baseline workflows/s, default SQLite", default.rate, "wf/s"),
        # workers/dev.py justifies its pragmas with about 2x; below 1 they would not pay their way.
        Row("(a) ratio tuned/default", tuned.rate / default.rate, "x", (">", 1.0)),
    )
    _cpu_note(report, "baseline workflow, default SQLite", default.cpu)
    _cpu_note(report, "baseline workflow, tuned SQLite", tuned.cpu)

    env = stack.app_env(address, dev.free_port(), uuid.uuid4().hex)
    worker = stack.referral_worker(env)
    api = stack.api(env)
    base_url = await stack.wait_for_api(api, env)
    # The bench opens cases too (for the fill) and mints tokens: with the very same settings.
    settings = Settings(**{key.lower(): value for key, value in env.items()})
    # The worker's cache bounds the workflows it keeps in memory: (e) depends on it.
    report.title += f", worker cache {settings.max_cached_workflows} workflows"
    limits = httpx.Limits(max_connections=2 * options.concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        ref = scenarios.Referrals(
            client=client,
            http=http,
            settings=settings,
            run=run_id,
            admin=_bearer(settings, "bench-admin", Role.ADMIN),
            coordinator=_bearer(settings, "bench-cora", Role.COORDINATOR, "cardiology"),
        )
        cpu = CpuMeter({"temporal": server, "worker": worker, "api": api, "bench": None})
        peak = RssPeak(worker)
        sampler = asyncio.create_task(peak.sample())
        try:
            await _referrals(options, ref, report, tuned.rate, say, worker, cpu)
        finally:
            sampler.cancel()
        say("(g) history a case writes over 100 and 1,000 actions, against raw updates")
        grown = [await history.growth(client, settings, run_id, n) for n in (100, 1000)]
        report.add(*history.rows(grown))
        report.add(Row("(e) worker RSS, peak sampled over the run", peak.peak / MB, "MB"))
    stack.stop(api, worker, server)

    if options.ledger_cases:
        say(f"(f) metrics over a ledger of {options.ledger_cases:,} cases (filled first)")
        times = await asyncio.to_thread(
            ledger_metrics.measure, options.ledger_cases, 10, stack.home / "ledger.db"
        )
        report.add(*ledger_metrics.rows(times))
    return report


@dataclass
class Baseline:
    rate: float
    cpu: CpuSplit


async def _baseline(
    options: Options,
    client: Client,
    run_id: str,
    server: subprocess.Popen,
    worker: subprocess.Popen,
) -> Baseline:
    # Untimed first round: the worker's first workflows import and sandbox its modules.
    await scenarios.baseline_rate(client, run_id, options.warmup, options.concurrency)
    cpu = CpuMeter({"temporal": server, "worker": worker, "bench": None}).start()
    timed = await scenarios.baseline_rate(
        client, run_id, options.baseline_n, options.concurrency, start=options.warmup
    )
    return Baseline(timed.rate, cpu.split(timed.count))


async def _referrals(
    options: Options,
    ref: scenarios.Referrals,
    report: Report,
    baseline: float,
    say: Say,
    worker: subprocess.Popen,
    cpu: CpuMeter,
) -> None:
    say(f"(b) opening {options.api_cases} cases through the API")
    await scenarios.api_open_rate(ref, options.warmup, options.concurrency)
    cpu.start()
    opened = await scenarios.api_open_rate(ref, options.api_cases, options.concurrency)
    _cpu_note(report, "case opened through the API", cpu.split(opened.count))
    report.add(
        Row("(b) cases/s through the API", opened.rate, "cases/s"),
        Row("(b) ratio (b)/(a tuned)", opened.rate / baseline, "x", (">=", 0.7)),
    )

    # A reading at a few thousand cases too: growth between it and (e) says what memory scales with.
    report.add(
        Row(f"(info) worker RSS with {ref.opened:,} open cases", rss_bytes(worker) / MB, "MB")
    )

    # Actions are measured on cases recent enough that the worker still caches them (half its
    # cache), so they compare with the raw update on a cached workflow; the cold figure follows.
    warm = ref.settings.max_cached_workflows // 2
    say(f"(c) {options.actions} add-note actions, each against a raw update")
    actions = await scenarios.action_latencies(
        ref, options.actions, scenarios.cardiology_cases(ref, newest=warm)
    )
    report.add(
        *_percentiles("(c) add-note through the API", actions.api),
        *_percentiles("(c) raw execute_update, minimal workflow", actions.raw),
        Row(
            "(c) ratio of p99s API/raw",
            percentile(actions.api, 99) / percentile(actions.raw, 99),
            "x",
            ("<=", 2.0),
        ),
        *_percentiles("(c) add_note update on the referral, no API", actions.direct),
    )

    if fill := options.cases - ref.opened:
        say(f"(d/e) opening {fill} more cases directly with the Temporal client")
        cpu.start()
        direct = await scenarios.direct_open_rate(ref, fill, options.fill_concurrency)
        _cpu_note(report, "case opened directly (no API)", cpu.split(direct.count))
        report.add(Row("(info) cases/s opened directly (no API)", direct.rate, "cases/s"))
    lag = await scenarios.wait_for_visibility(ref.client, ref.opened)
    say(f"visibility lists all {ref.opened} open cases ({lag:.1f}s after the last opened)")
    rss = rss_bytes(worker)

    say(f"(d) {options.queue_requests} work-queue pages")
    await scenarios.queue_warmup(ref)
    cpu.start()
    queue = await scenarios.queue_latencies(ref, options.queue_requests)
    _cpu_note(report, "work-queue page", cpu.split(len(queue)))
    report.add(*_percentiles("(d) work-queue page", queue, p99_target=100.0))

    cold_count = max(20, options.actions // 3)
    say(f"(info) {cold_count} add-note actions on random cases of all {ref.opened}")
    cold = await scenarios.cold_action_latencies(ref, cold_count)
    report.add(*_percentiles("(info) add-note, random case of all open", cold))
    report.add(Row(f"(e) worker RSS with {ref.opened:,} open cases", rss / MB, "MB", ("<=", 300.0)))


def _cpu_note(report: Report, label: str, split: CpuSplit) -> None:
    report.notes.append(f"CPU per {label}: {split}")
    if split.others_share > BUSY_MACHINE:
        report.notes.append(
            f"  WARNING: other processes took {split.others_share:.0%} of the machine's CPU "
            "meanwhile; this phase's figures are disturbed"
        )


def _tree_state() -> str:
    """Which code was measured: the commit, and whether the working tree differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code version unknown"
    return f"commit {commit}" + (" + uncommitted changes" if changed else "")


def _percentiles(label: str, samples: list[float], p99_target: float | None = None) -> list[Row]:
    ms = [s * 1000 for s in samples]
    target = ("<=", p99_target) if p99_target is not None else None
    return [
        Row(f"{label} p50", percentile(ms, 50), "ms"),
        Row(f"{label} p99", percentile(ms, 99), "ms", target),
    ]


def _bearer(settings: Settings, user: str, role: Role, team: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user=user, role=role, team=team)}"}


class RssPeak:
    """Samples the worker's RSS while the run goes on; a point reading could miss the top."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.peak = 0

    async def sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.process))
            await asyncio.sleep(0.5)
