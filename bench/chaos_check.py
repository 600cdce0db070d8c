"""The end of a chaos run: every case checked against what the API accepted for it.

- wrong stage: a case not in the stage its accepted actions imply (claimed: awaiting
  scheduling; scheduled with a booked appointment: scheduled; cancelled: cancelled);
- lost: an accepted action with no ledger entry (a note whose words are not in the ledger, a
  claim without its assignment, a scheduling or cancel without its stage change);
- duplicated: an action in the ledger more than once, a case opened twice (two "created"
  answers, or two opening entries), an escalation fired twice in one visit of a stage;
- broken chains: a case whose ledger does not verify (GET .../audit/verify: hashes, order, the
  signed head, and agreement with the case in Temporal);
- unreadable: a case the API cannot show once the worker starts afresh (its cache empty, each
  case is rebuilt by replaying its history: a history that does not replay shows here).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from api.audit import AuditEvent, case_trail
from bench.chaos_stack import now
from bench.chaos_traffic import Book

SETTLE_WITHIN = 240.0  # an EHR retry backs off to 2 minutes: a claim may wait that long


@dataclass
class Verdict:
    cases: int = 0
    wrong_stage: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    broken_chains: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    escalations: int = 0
    settled_in: float = 0.0

    @property
    def clean(self) -> bool:
        return not (
            self.wrong_stage
            or self.lost
            or self.duplicated
            or self.broken_chains
            or self.unreadable
        )


async def _get(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> httpx.Response:
    """A read of the check's, tried again when the connection broke: a kept-alive connection the
    API closed just as it was reused fails the read (httpx.ReadError), though nothing is wrong."""
    for _ in range(2):
        try:
            return await http.get(path, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
    return await http.get(path, headers=headers)


def expected_stage(book: Book, case_id: str) -> str:
    actions = [accepted.action for accepted in book.accepted.get(case_id, [])]
    if "cancel" in actions:
        return "cancelled"
    if "mark-scheduled" in actions:
        return "scheduled"
    if "assign" in actions:
        return "awaiting_scheduling"
    return "unassigned"


async def settle(http: httpx.AsyncClient, book: Book, admin: dict[str, str]) -> dict[str, dict]:
    """Each case as the API shows it once it has reached the stage expected of it with every
    event in the ledger, or as it is when SETTLE_WITHIN runs out (then it is reported)."""
    began, waiting, seen = now(), set(book.opened), {}
    while waiting and now() - began < SETTLE_WITHIN:
        for case_id in list(waiting):
            response = await _get(http, f"/api/v1/cases/{case_id}", admin)
            if response.status_code != 200:
                continue
            # A read is a query, answered by a worker: it tells a worker killed as the traffic
            # ended is back, when no action came after it.
            book.successes.append((now(), "read", 0))
            case = seen[case_id] = response.json()
            if case["stage"] == expected_stage(book, case_id) and not case["ledger_pending"]:
                waiting.discard(case_id)
        if waiting:
            await asyncio.sleep(2)
    return seen


async def check(
    http: httpx.AsyncClient, engine: Engine, book: Book, admin: dict[str, str]
) -> Verdict:
    began = now()
    seen = await settle(http, book, admin)
    verdict = Verdict(cases=len(book.opened), settled_in=now() - began)
    for case_id in sorted(book.opened):
        case = seen.get(case_id)
        if case is None or case["stage"] != expected_stage(book, case_id):
            stage = case["stage"] if case else "unreadable"
            verdict.wrong_stage.append(f"{case_id}: {stage}, not {expected_stage(book, case_id)}")
        trail = await asyncio.to_thread(case_trail, engine, case_id)
        _compare(verdict, book, case_id, trail)
        report = await _get(http, f"/api/v1/cases/{case_id}/audit/verify", admin)
        if report.status_code != 200 or not report.json()["intact"]:
            verdict.broken_chains.append(f"{case_id}: {report.text[:200]}")
    for case_id, created in book.created.items():
        if created > 1:
            verdict.duplicated.append(f"{case_id}: answered 'created' {created} times")
    return verdict


def _compare(verdict: Verdict, book: Book, case_id: str, trail: list[AuditEvent]) -> None:
    kinds = Counter(event.kind for event in trail)
    notes = Counter(event.details.get("text") for event in trail if event.kind == "note")
    stages = Counter(event.stage_after for event in trail if event.stage_after)
    if kinds["opened"] != 1:
        verdict.duplicated.append(f"{case_id}: opened {kinds['opened']} times in the ledger")
    for accepted in book.accepted.get(case_id, []):
        if accepted.note is not None:
            count, what = notes[accepted.note], "note"
        elif accepted.action == "assign":
            count, what = kinds["assigned"], "claim"
        elif accepted.action == "mark-scheduled":
            count, what = stages["scheduled"], "scheduling"
        else:
            count, what = kinds["cancelled"], "cancel"
        if count == 0:
            verdict.lost.append(f"{case_id}: accepted {what} not in the ledger")
        elif count > 1:
            verdict.duplicated.append(f"{case_id}: {what} {count} times in the ledger")
    visit, fired = 0, Counter()
    for event in trail:
        if event.stage_after:
            visit += 1
        if event.kind == "escalated":
            verdict.escalations += 1
            fired[(visit, json.dumps(event.details, sort_keys=True))] += 1
    for (_, details), count in fired.items():
        if count > 1:
            verdict.duplicated.append(f"{case_id}: escalation {details} fired {count} times")


async def reread(http: httpx.AsyncClient, verdict: Verdict, book: Book, admin: dict) -> None:
    """Every case read once more (by a worker started afresh: see `unreadable`)."""
    for case_id in sorted(book.opened):
        for _ in range(60):  # the worker is starting: "no worker is answering" until it is up
            response = await _get(http, f"/api/v1/cases/{case_id}", admin)
            if response.status_code != 503:
                break
            await asyncio.sleep(1)
        if response.status_code != 200:
            verdict.unreadable.append(f"{case_id}: {response.status_code} {response.text[:200]}")
