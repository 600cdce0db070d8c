"""The chaos run's traffic: referral cases driven through the API as a care team would, each
request retried through faults (the same Idempotency-Key each time), and a book of what the API
accepted, which the run's end is checked against.

Every case is opened and claimed; then a third wait for scheduling with notes, a third are
scheduled (an Appointment booked in the EHR first, so the claim verifies) and a third cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.chaos_stack import now
from workers.demo import CARDIOLOGY, service_request

RETRYABLE = {500, 502, 503, 504}
PLANS = ("awaiting_scheduling", "scheduled", "cancelled")


@dataclass
class Accepted:
    action: str
    note: str | None = None


@dataclass
class Book:
    """What the API accepted, case by case, and how the traffic fared."""

    run: str
    cases: int
    opened: dict[str, str] = field(default_factory=dict)  # case id -> order id
    created: Counter = field(default_factory=Counter)  # case id -> answers that said "created"
    accepted: dict[str, list[Accepted]] = field(default_factory=dict)
    unanswered: int = 0  # requests given up on after retrying through the faults
    retries: int = 0
    server_errors: Counter = field(default_factory=Counter)  # 5xx answers seen, by status
    successes: list[tuple[float, str, int]] = field(default_factory=list)  # (when, kind, api)
    in_flight: list[int] = field(default_factory=lambda: [0, 0])

    def plan(self, index: int) -> str:
        return PLANS[index % len(PLANS)]

    def case_id(self, index: int) -> str:
        return f"referral-{self.order_id(index)}"

    def order_id(self, index: int) -> str:
        return f"{self.run}-{index:05d}"

    def patient_id(self, index: int) -> str:
        return f"{self.run}-p{index:05d}"

    @property
    def actions(self) -> int:
        return sum(len(accepted) for accepted in self.accepted.values())


class Traffic:
    def __init__(
        self,
        book: Book,
        api_urls: list[str],
        fhir_url: str,
        coordinator: dict[str, str],
        admin: dict[str, str],
        *,
        give_up_after: float = 180,
    ) -> None:
        self.book = book
        self.api_urls = api_urls
        self.fhir_url = fhir_url
        self.coordinator = coordinator
        self.admin = admin
        self.give_up_after = give_up_after
        self.turn = itertools.count()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5))

    async def close(self) -> None:
        await self.http.aclose()

    # -- the EHR's records, before the run ------------------------------------------------------

    async def seed(self, batch: int = 100) -> None:
        """Each case's patient and order, in the EHR (a batch Bundle of PUTs per 100)."""
        for first in range(0, self.book.cases, batch):
            entries = []
            for index in range(first, min(first + batch, self.book.cases)):
                for resource in (self._patient(index), self._order(index)):
                    entries.append(
                        {
                            "resource": resource,
                            "request": {
                                "method": "PUT",
                                "url": f"{resource['resourceType']}/{resource['id']}",
                            },
                        }
                    )
            bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
            response = await self.http.post(self.fhir_url, json=bundle, timeout=120)
            response.raise_for_status()

    def _patient(self, index: int) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": self.book.patient_id(index),
            "name": [{"family": "Chaos", "given": [f"P{index}"]}],
            "birthDate": "1970-01-01",
        }

    def _order(self, index: int) -> dict[str, Any]:
        # One in four is stat: claimed within the day, so its deadline can pass during the run.
        priority = "stat" if index % 4 == 0 else "routine"
        return service_request(
            self.book.order_id(index),
            self.book.patient_id(index),
            "Cardiology consult",
            CARDIOLOGY,
            priority=priority,
        )

    # -- one case, start to end ---------------------------------------------------------------

    async def drive(self, concurrency: int, pace: float | None = None) -> None:
        """Every case, `concurrency` at a time; with `pace`, a new case every `pace` seconds."""
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                await self.case(index)

        jobs = []
        for index in range(self.book.cases):
            jobs.append(asyncio.create_task(one(index)))
            if pace:
                await asyncio.sleep(pace)
        await asyncio.gather(*jobs)

    async def case(self, index: int) -> None:
        book, case_id = self.book, self.book.case_id(index)
        opened = await self._request("open", "POST", "/api/v1/referrals", self._order(index))
        if opened is None:
            return
        book.opened[case_id] = self.book.order_id(index)
        if opened.get("created"):
            book.created[case_id] += 1
        book.accepted[case_id] = []
        if not await self._act(case_id, "assign", {}):
            return
        await self._note(case_id, index, 1)
        plan = book.plan(index)
        if plan == "scheduled":
            at = datetime.now(UTC) + timedelta(days=7 + index % 20, hours=index % 8)
            appointment = await self._book_appointment(index, at)
            if appointment:
                body = {"appointment": appointment, "appointment_at": at.isoformat()}
                await self._act(case_id, "mark-scheduled", body)
        elif plan == "cancelled":
            await self._act(case_id, "cancel", {"reason": "Patient moved away"})
        else:
            await self._note(case_id, index, 2)

    async def _note(self, case_id: str, index: int, n: int) -> None:
        text = f"Chaos note {n} on case {index}: {uuid.uuid4().hex[:8]}"
        await self._act(case_id, "add-note", {"text": text}, note=text)

    async def _act(
        self, case_id: str, action: str, body: dict[str, Any], note: str | None = None
    ) -> bool:
        path = f"/api/v1/cases/{case_id}/actions/{action}"
        key = f"chaos-{uuid.uuid4().hex}"
        answer = await self._request("action", "POST", path, body, key=key)
        if answer is None:
            return False
        self.book.accepted[case_id].append(Accepted(action, note))
        return True

    async def _book_appointment(self, index: int, at: datetime) -> str | None:
        """A booked Appointment for the case's order, written to the EHR (retried through its
        outage, with a client-chosen id so a retry writes the same one)."""
        appointment_id = f"{self.book.run}-a{index:05d}"
        resource = {
            "resourceType": "Appointment",
            "id": appointment_id,
            "status": "booked",
            "start": at.isoformat(),
            "end": (at + timedelta(minutes=30)).isoformat(),
            "participant": [
                {
                    "actor": {"reference": f"Patient/{self.book.patient_id(index)}"},
                    "status": "accepted",
                }
            ],
            "basedOn": [{"reference": f"ServiceRequest/{self.book.order_id(index)}"}],
        }
        began = now()
        while now() - began < self.give_up_after:
            try:
                response = await self.http.put(
                    f"{self.fhir_url}/Appointment/{appointment_id}", json=resource
                )
                if response.status_code < 300:
                    self.book.successes.append((now(), "ehr", -1))
                    return f"Appointment/{appointment_id}"
            except httpx.HTTPError:
                pass
            self.book.retries += 1
            await asyncio.sleep(0.5 + random.random())
        self.book.unanswered += 1
        return None

    async def _request(
        self, kind: str, method: str, path: str, body: dict[str, Any], key: str | None = None
    ) -> dict[str, Any] | None:
        """Send until an API answers 2xx (None: a final 4xx, or given up); a dead API process,
        a 5xx or a key still in flight is retried, on the other API process as often as not."""
        headers = dict(self.admin if kind == "open" else self.coordinator)
        if key:
            headers["Idempotency-Key"] = key
        began = now()
        while now() - began < self.give_up_after:
            index = next(self.turn) % len(self.api_urls)
            self.book.in_flight[index] += 1
            try:
                response = await self.http.request(
                    method, self.api_urls[index] + path, json=body, headers=headers
                )
            except httpx.HTTPError:
                response = None
            finally:
                self.book.in_flight[index] -= 1
            if response is not None and response.status_code < 300:
                self.book.successes.append((now(), kind, index))
                return response.json()
            if response is not None and response.status_code >= 500:
                self.book.server_errors[response.status_code] += 1
            if response is not None and not _retryable(response):
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
            self.book.retries += 1
            await asyncio.sleep(0.3 + random.random())
        self.book.unanswered += 1
        return None


def _retryable(response: httpx.Response) -> bool:
    """A 5xx, or a 409 saying the same key's first request is still in flight somewhere."""
    if response.status_code == 409:
        return "in progress" in response.text
    return response.status_code in RETRYABLE
