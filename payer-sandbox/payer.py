"""The payer's books: the rules it decides by, the requests it received with their current
answers, its subscriptions; and what it does when a pended request is decided.

Requests are kept by their Claim identifier value, in memory, and in a JSON file when the sandbox
has a data directory.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pas import (
    RESPONSE_BUNDLE_PROFILE,
    TRANSMISSION_IDENTIFIERS,
    claim_response,
    coded,
    extension,
    is_cancel,
)
from pydantic import BaseModel, Field, model_validator
from subscriptions import deliver, filter_of, notification
from validation import refuse


class Reason(BaseModel):
    code: str  # X12 886 review decision reason code
    display: str


class Rule(BaseModel):
    """How the payer decides one service code: approve (A1) for `days`, deny (A3) with a reason,
    or pend (A4) and later decide `then`, after `after_seconds` or when told to."""

    service: str
    action: Literal["A1", "A3", "A4"] = "A1"
    days: int = Field(default=90, ge=1, le=3650)
    reason: Reason | None = None
    then: Literal["A1", "A3"] = "A1"
    after_seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _denial_has_reason(self) -> Rule:
        if (self.action == "A3" or (self.action == "A4" and self.then == "A3")) and not self.reason:
            raise ValueError("a denial needs a reason (X12 886 code and display)")
        return self


class Decide(BaseModel):
    action: Literal["A1", "A3"]
    days: int | None = Field(default=None, ge=1, le=3650)
    reason: Reason | None = None

    @model_validator(mode="after")
    def _denial_has_reason(self) -> Decide:
        if self.action == "A3" and not self.reason:
            raise ValueError("a denial needs a reason (X12 886 code and display)")
        return self


DEFAULT = Rule(service="*")  # unknown codes: approved for 90 days


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Payer:
    """Everything the payer holds: rules, requests (by Claim identifier value), subscriptions."""

    def __init__(self, base_url: str, data_dir: Path | None) -> None:
        self.base_url = base_url
        self.file = data_dir / "payer.json" if data_dir else None
        self.rules: dict[str, Rule] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.events: dict[str, int] = {}
        self.timers: dict[str, asyncio.Task] = {}
        self.http = httpx.AsyncClient(timeout=10)

    # -- persistence (optional) ------------------------------------------------------------------

    def load(self) -> None:
        if self.file and self.file.exists():
            saved = json.loads(self.file.read_text())
            self.rules = {r["service"]: Rule.model_validate(r) for r in saved["rules"]}
            self.records, self.subscriptions = saved["records"], saved["subscriptions"]
            self.events = saved["events"]

    def save(self) -> None:
        if not self.file:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        saved = {
            "rules": [r.model_dump() for r in self.rules.values()],
            "records": self.records,
            "subscriptions": self.subscriptions,
            "events": self.events,
        }
        temporary = self.file.with_suffix(".tmp")
        temporary.write_text(json.dumps(saved))
        temporary.replace(self.file)

    # -- requests --------------------------------------------------------------------------------

    def submit(self, bundle: dict[str, Any]) -> dict[str, Any]:
        entries = bundle["entry"]
        claim = entries[0]["resource"]
        key = claim["identifier"][0].get("value")
        if not key:
            raise refuse(
                "required", "Claim.identifier has a value", "Bundle.entry[0].resource.identifier"
            )
        if is_cancel(claim):
            return self.cancel(bundle, key, self.cancelled_key(claim, entries, key))
        if key in self.records:  # the same request again (a retry): the same answer
            return self.records[key]["response"]
        decisions, pending = [], None
        for item in claim["item"]:
            code = coded(item.get("productOrService")) or ""
            rule = self.rules.get(code, DEFAULT)
            decision = {"sequence": item["sequence"], "action": rule.action}
            if rule.action == "A1":
                decision.update(self.approval(item, rule.days))
            elif rule.action == "A3":
                decision["reason"] = rule.reason.model_dump()
            else:
                decision["pended"] = f"PEND{secrets.randbelow(10**6):06d}"
                decision["rule"] = rule.model_dump()
                if rule.after_seconds is not None:
                    wait = rule.after_seconds
                    pending = wait if pending is None else min(pending, wait)
            decisions.append(decision)
        record = {"key": key, "bundle": bundle, "decisions": decisions, "cancelled": False}
        record["pending_at"] = time.time() + pending if pending is not None else None
        record["notifications"], record["deliveries"] = {}, []
        self.records[key] = record
        self.respond(record)
        if record["pending_at"] is not None:
            self.arm(key, pending)
        return record["response"]

    def approval(self, item: dict[str, Any], days: int) -> dict[str, Any]:
        start = (
            date.fromisoformat(item["servicedDate"][:10])
            if item.get("servicedDate")
            else now().date()
        )
        return {
            "number": f"PA{secrets.randbelow(10**8):08d}",
            "start": start.isoformat(),
            "end": (start + timedelta(days=days - 1)).isoformat(),
        }

    def respond(self, record: dict[str, Any]) -> None:
        """A new ClaimResponse version for the record's current decisions (a new identifier, so
        a client tells a new decision from the same one delivered twice)."""
        claim = record["bundle"]["entry"][0]["resource"]
        response_id = f"cr-{uuid.uuid4().hex[:16]}"
        decisions = [{k: v for k, v in d.items() if k != "rule"} for d in record["decisions"]]
        response = claim_response(claim, decisions, response_id, now().isoformat())
        entries = [
            {"fullUrl": f"{self.base_url}/ClaimResponse/{response_id}", "resource": response}
        ]
        wanted = [claim[field]["reference"] for field in ("patient", "insurer", "provider")]
        for entry in record["bundle"]["entry"][1:]:
            resource = entry["resource"]
            name = f"{resource['resourceType']}/{resource.get('id')}"
            if any(ref in (name, entry["fullUrl"]) for ref in wanted) and entry not in entries:
                entries.append(entry)
        record["response"] = {
            "resourceType": "Bundle",
            "id": response_id,
            "meta": {"profile": [RESPONSE_BUNDLE_PROFILE]},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": "collection",
            "timestamp": now().isoformat(),
            "entry": entries,
        }
        self.save()

    def cancelled_key(self, claim: dict[str, Any], entries: list[dict[str, Any]], key: str) -> str:
        """The request a cancel names: Claim.related.claim (by identifier, or the Claim it points
        at in the Bundle), else its own identifier."""
        for related in claim.get("related") or []:
            target = related.get("claim") or {}
            if (target.get("identifier") or {}).get("value"):
                return target["identifier"]["value"]
            for entry in entries[1:]:
                resource = entry["resource"]
                if target.get("reference") in (
                    entry["fullUrl"],
                    f"Claim/{resource.get('id')}",
                ) and resource.get("identifier"):
                    return resource["identifier"][0]["value"]
        return key

    def cancel(self, bundle: dict[str, Any], key: str, target_key: str) -> dict[str, Any]:
        target = self.records.get(target_key)
        if target is None:
            raise refuse(
                "not-found",
                "No request with that identifier to cancel",
                "Bundle.entry[0].resource.related",
            )
        if not target["cancelled"]:
            self.disarm(target_key)
            target["cancelled"], target["pending_at"] = True, None
            target["decisions"] = [
                {"sequence": d["sequence"], "action": "C"} for d in target["decisions"]
            ]
            self.respond(target)
        if key == target_key:
            return target["response"]
        if key not in self.records:
            claim = bundle["entry"][0]["resource"]
            record = {
                "key": key,
                "bundle": bundle,
                "decisions": [{"sequence": i["sequence"], "action": "C"} for i in claim["item"]],
                "cancelled": True,
                "pending_at": None,
                "notifications": {},
                "deliveries": [],
            }
            self.records[key] = record
            self.respond(record)
        return self.records[key]["response"]

    # -- pended requests -------------------------------------------------------------------------

    def arm(self, key: str, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(max(delay, 0))
            self.timers.pop(key, None)
            await self.decide(key, None)

        self.timers[key] = asyncio.create_task(later())

    def disarm(self, key: str) -> None:
        timer = self.timers.pop(key, None)
        if timer and timer is not asyncio.current_task():
            timer.cancel()

    async def decide(self, key: str, told: Decide | None) -> list[dict[str, Any]] | None:
        """Decide the pended items (as `told`, else as their rule says) and notify. None when
        there is nothing pended to decide (already decided, or cancelled)."""
        record = self.records[key]
        pended = [d for d in record["decisions"] if d["action"] == "A4"]
        if not pended:  # decided already, or cancelled (its items are C)
            return None
        self.disarm(key)
        items = {i["sequence"]: i for i in record["bundle"]["entry"][0]["resource"]["item"]}
        for decision in pended:
            rule = Rule.model_validate(decision.pop("rule"))
            action = told.action if told else rule.then
            decision.pop("pended", None)
            decision["action"] = action
            if action == "A1":
                days = (told.days if told else None) or rule.days
                decision.update(self.approval(items[decision["sequence"]], days))
            else:
                decision["reason"] = ((told.reason if told else None) or rule.reason).model_dump()
        record["pending_at"] = None
        self.respond(record)
        return await self.notify(record)

    async def notify(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Tell every active subscription whose filter matches the request's sender."""
        claim = record["bundle"]["entry"][0]["resource"]
        senders = senders_of(claim)
        for subscription in self.subscriptions.values():
            wanted = filter_of(subscription)
            if subscription["status"] != "active" or (wanted and wanted not in senders):
                continue
            number = self.events.get(subscription["id"], 0) + 1
            self.events[subscription["id"]] = number
            record["notifications"][subscription["id"]] = notification(
                subscription, self.base_url, number, record["response"]
            )
        self.save()
        return await self.send(record)

    async def send(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        sent = await asyncio.gather(
            *(
                deliver(self.http, self.subscriptions[sid], bundle)
                for sid, bundle in record["notifications"].items()
                if sid in self.subscriptions
            )
        )
        record["deliveries"] += sent
        self.save()
        return list(sent)


def senders_of(claim: dict[str, Any]) -> set[str]:
    found = extension(claim, TRANSMISSION_IDENTIFIERS) or {}
    return {e.get("valueString") for e in found.get("extension") or []} - {None}
