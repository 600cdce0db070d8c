"""The measured scenarios, each a function of a running stack and its clients."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from temporalio.client import Client, WorkflowHandle

from bench import orders
from bench.baseline import BaselineWorkflow, UpdateWorkflow
from bench.measure import Throughput, latencies, throughput
from bench.stack import BASELINE_QUEUE
from workers.settings import Settings
from workflows.care.models import ActionAck, Actor, Role
from workflows.referral.models import AddNote
from workflows.referral.workflow import ReferralWorkflow


@dataclass
class Referrals:
    """The referral side of the stack, as the bench process reaches it."""

    client: Client
    http: httpx.AsyncClient
    settings: Settings
    run: str
    admin: dict[str, str]
    coordinator: dict[str, str]
    opened: int = 0  # cases 0..opened-1 are open


async def baseline_rate(
    client: Client, run: str, count: int, concurrency: int, start: int = 0
) -> Throughput:
    """Workflows/s of the one-activity workflow, started and awaited from closed loops."""

    async def job(index: int) -> None:
        await client.execute_workflow(
            BaselineWorkflow.run, "x", id=f"baseline-{run}-{index}", task_queue=BASELINE_QUEUE
        )

    return await throughput(count, concurrency, job, start=start)


async def api_open_rate(ref: Referrals, count: int, concurrency: int) -> Throughput:
    """Cases/s opened through POST /api/v1/referrals; each 201 is a case waiting, unassigned."""

    async def job(index: int) -> None:
        response = await ref.http.post(
            "/api/v1/referrals", json=orders.order(ref.run, index), headers=ref.admin
        )
        if response.status_code != 201 or response.json()["stage"] != "unassigned":
            raise RuntimeError(f"POST /referrals: {response.status_code} {response.text[:300]}")

    result = await throughput(count, concurrency, job, start=ref.opened)
    ref.opened += count
    return result


async def direct_open_rate(ref: Referrals, count: int, concurrency: int) -> Throughput:
    """Cases/s opened with the API's own input and update-with-start, without HTTP."""

    async def job(index: int) -> None:
        await orders.open_direct(ref.client, ref.settings, ref.run, index)

    result = await throughput(count, concurrency, job, start=ref.opened)
    ref.opened += count
    return result


def cardiology_cases(ref: Referrals, newest: int | None = None) -> list[str]:
    """Open cases the cardiology coordinator may act on; the `newest` ones only if given (those
    are still in the worker's workflow cache)."""
    first = 0 if newest is None else max(0, ref.opened - newest)
    return [orders.case_id(ref.run, i) for i in range(first, ref.opened) if orders.is_cardiology(i)]


async def api_note(ref: Referrals, case_id: str, text: str) -> None:
    response = await ref.http.post(
        f"/api/v1/cases/{case_id}/actions/add-note", json={"text": text}, headers=ref.coordinator
    )
    if response.status_code != 200:
        raise RuntimeError(f"add-note {case_id}: {response.status_code} {response.text[:300]}")


@dataclass
class ActionLatencies:
    api: list[float]
    raw: list[float]
    direct: list[float]  # the referral workflow's own update, from the bench process


async def action_latencies(ref: Referrals, count: int, cases: list[str]) -> ActionLatencies:
    """Interleaves the three kinds of update one by one, so drift in the machine's load (the
    server's SQLite growing, background compaction) falls on all of them alike."""
    pick = random.Random(7)
    raw_handles = await _update_workflows(ref.client, ref.run, 20)
    actor = Actor(user_id="bench-cora", role=Role.COORDINATOR, team="cardiology")
    api: list[float] = []
    raw: list[float] = []
    direct: list[float] = []

    async def one(index: int) -> None:
        case = pick.choice(cases)
        began = time.perf_counter()
        await api_note(ref, case, f"bench note {index}")
        api.append(time.perf_counter() - began)
        handle = raw_handles[index % len(raw_handles)]
        began = time.perf_counter()
        await handle.execute_update(UpdateWorkflow.add_note, f"bench note {index}")
        raw.append(time.perf_counter() - began)
        case = pick.choice(cases)
        began = time.perf_counter()
        await ref.client.get_workflow_handle(case).execute_update(
            ReferralWorkflow.add_note,
            AddNote(actor=actor, text=f"bench note {index}"),
            result_type=ActionAck,
        )
        direct.append(time.perf_counter() - began)

    warmup = 10
    await latencies(warmup, one)
    for samples in (api, raw, direct):
        samples.clear()
    await latencies(count, one, start=warmup)
    for handle in raw_handles:
        await handle.signal(UpdateWorkflow.finish)
    return ActionLatencies(api, raw, direct)


async def _update_workflows(client: Client, run: str, count: int) -> list[WorkflowHandle]:
    return [
        await client.start_workflow(
            UpdateWorkflow.run, id=f"update-{run}-{i}", task_queue=BASELINE_QUEUE
        )
        for i in range(count)
    ]


async def cold_action_latencies(ref: Referrals, count: int) -> list[float]:
    """add-note on random open cases: with more cases than the worker caches, most must first be
    replayed from their history."""
    pick = random.Random(11)
    cases = cardiology_cases(ref)
    return await latencies(count, lambda i: api_note(ref, pick.choice(cases), f"cold note {i}"))


QUEUE_FILTERS = [
    {"stage": "unassigned", "stalled": "false"},
    {"stage": "unassigned", "stalled": "false", "priority": "urgent"},
    {"stage": "unassigned", "stalled": "false", "location": "north-clinic"},
]


async def queue_warmup(ref: Referrals) -> None:
    await latencies(10, _queue_page(ref))


async def queue_latencies(ref: Referrals, count: int) -> list[float]:
    """First pages of the cardiology coordinator's work queue (the API adds the team filter)."""
    return await latencies(count, _queue_page(ref), start=10)


def _queue_page(ref: Referrals) -> Callable[[int], Awaitable[None]]:

    async def job(index: int) -> None:
        params = {"page_size": 50, **QUEUE_FILTERS[index % len(QUEUE_FILTERS)]}
        response = await ref.http.get("/api/v1/cases", params=params, headers=ref.coordinator)
        if response.status_code != 200 or not response.json()["items"]:
            raise RuntimeError(f"GET /cases: {response.status_code} {response.text[:300]}")

    return job


async def wait_for_visibility(client: Client, expected: int, within: float = 300) -> float:
    """Visibility lags the workflows: wait until it lists every open case, answer the wait."""
    began = time.monotonic()
    query = "WorkflowType = 'Referral' AND ExecutionStatus = 'Running'"
    while (await client.count_workflows(query)).count < expected:
        if time.monotonic() - began > within:
            raise TimeoutError(f"visibility did not list {expected} open cases in {within:.0f}s")
        await asyncio.sleep(1)
    return time.monotonic() - began
