"""The payer sandbox: a payer that speaks Da Vinci PAS (STU 2.2) on loopback, for `make run` and
the tests. Synthetic data only; no authentication.

    PAYER_PORT=8105 PAYER_RULES=rules.json PAYER_DATA_DIR=.data/payer python server.py

FHIR base: http://127.0.0.1:<port>/fhir
  POST /fhir/Claim/$submit        a PAS request Bundle -> a PAS response Bundle (4xx: OperationOutcome)
  POST /fhir/Claim/$inquire       a PAS inquiry Bundle -> Parameters with the current response
  POST|GET /fhir/Subscription     PAS subscriptions (R4 backport, rest-hook, full-resource)
Test and demo controls:
  PUT  /sandbox/rules             how each service code is decided (a JSON list, see Rule)
  GET  /sandbox/claims            every request received, with its current response
  POST /sandbox/claims/{identifier}/decide   decide a pended request now {"action": "A1"|"A3"}
  POST /sandbox/claims/{identifier}/notify   send the last notification about it again
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pas import (
    RESPONSE_BUNDLE_PROFILE,
    TRANSMISSION_IDENTIFIERS,
    claim_response,
    coded,
    extension,
    is_cancel,
)
from pydantic import BaseModel, Field, ValidationError, model_validator
from subscriptions import accept, deliver, filter_of, notification
from validation import Refused, refuse, request_bundle

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("payer-sandbox")


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


def fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


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


def create_app(base_url: str, data_dir: Path | None = None, rules: Path | None = None) -> FastAPI:
    payer = Payer(base_url, data_dir)
    payer.load()
    if rules:  # the rules file given at start replaces any saved rules
        payer.rules = {r["service"]: Rule.model_validate(r) for r in json.loads(rules.read_text())}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for key, record in payer.records.items():
            if record.get("pending_at") is not None:
                payer.arm(key, record["pending_at"] - time.time())
        yield
        for timer in list(payer.timers.values()):
            timer.cancel()
        await payer.http.aclose()

    app = FastAPI(title="Payer sandbox (Da Vinci PAS)", lifespan=lifespan)
    app.state.payer = payer

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused) -> JSONResponse:
        return fhir(err.outcome, err.status)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            raise refuse("structure", "The body is not JSON") from None

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/fhir/Claim/$submit")
    async def submit(request: Request) -> JSONResponse:
        bundle = request_bundle(await body_of(request))
        return fhir(payer.submit(bundle))

    @app.post("/fhir/Claim/$inquire")
    async def inquire(request: Request) -> JSONResponse:
        bundle = request_bundle(await body_of(request), inquiry=True)
        example = bundle["entry"][0]["resource"]
        record = payer.records.get(example["identifier"][0].get("value") or "")
        found = []
        if record:
            claim = record["bundle"]["entry"][0]["resource"]
            if all(
                claim[field].get("reference") == example[field].get("reference")
                for field in ("patient", "insurer", "provider")
            ):
                found.append({"name": "return", "resource": record["response"]})
        return fhir({"resourceType": "Parameters", "parameter": found})

    @app.post("/fhir/Subscription", status_code=201)
    async def subscribe(request: Request) -> JSONResponse:
        subscription = accept(await body_of(request), uuid.uuid4().hex[:16])
        payer.subscriptions[subscription["id"]] = subscription
        payer.save()
        return fhir(subscription, 201)

    @app.get("/fhir/Subscription")
    async def subscriptions(url: str | None = None, status: str | None = None) -> JSONResponse:
        matches = [
            s
            for s in payer.subscriptions.values()
            if (url is None or s["channel"]["endpoint"] == url)
            and (status is None or s["status"] in status.split(","))
        ]
        return fhir(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "entry": [
                    {
                        "fullUrl": f"{base_url}/Subscription/{s['id']}",
                        "resource": s,
                        "search": {"mode": "match"},
                    }
                    for s in matches
                ],
            }
        )

    @app.get("/fhir/Subscription/{sid}")
    async def subscription(sid: str) -> JSONResponse:
        if sid not in payer.subscriptions:
            raise refuse("not-found", "No such Subscription", status=404)
        return fhir(payer.subscriptions[sid])

    @app.delete("/fhir/Subscription/{sid}", status_code=204)
    async def unsubscribe(sid: str) -> None:
        payer.subscriptions.pop(sid, None)
        payer.save()

    @app.put("/sandbox/rules")
    async def set_rules(request: Request) -> list[Rule]:
        try:
            given = [Rule.model_validate(r) for r in await body_of(request)]
        except (TypeError, ValidationError) as err:
            raise refuse("invalid", f"Expected a list of rules: {err}", status=422) from None
        payer.rules = {r.service: r for r in given}
        payer.save()
        return given

    @app.get("/sandbox/claims")
    async def claims() -> list[dict[str, Any]]:
        return [
            {
                "identifier": key,
                "claim": r["bundle"]["entry"][0]["resource"],
                "bundle": r["bundle"],
                "response": r["response"],
                "cancelled": r["cancelled"],
                "pended": r["pending_at"] is not None
                or any(d["action"] == "A4" for d in r["decisions"]),
                "deliveries": r["deliveries"],
            }
            for key, r in payer.records.items()
        ]

    @app.post("/sandbox/claims/{key}/decide")
    async def decide(key: str, told: Decide) -> dict[str, Any]:
        if key not in payer.records:
            raise refuse("not-found", "No request with that identifier", status=404)
        deliveries = await payer.decide(key, told)
        if deliveries is None:
            raise refuse("business-rule", "Nothing is pended on that request", status=409)
        return {"response": payer.records[key]["response"], "deliveries": deliveries}

    @app.post("/sandbox/claims/{key}/notify")
    async def renotify(key: str) -> dict[str, Any]:
        record = payer.records.get(key)
        if record is None or not record["notifications"]:
            raise refuse("not-found", "No notification was sent about that request", status=404)
        return {"deliveries": await payer.send(record)}

    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host = os.environ.get("PAYER_HOST") or "127.0.0.1"  # loopback: it has no authentication
    port = int(os.environ.get("PAYER_PORT") or 8105)
    data_dir = os.environ.get("PAYER_DATA_DIR")
    rules = os.environ.get("PAYER_RULES")
    app = create_app(
        f"http://{host}:{port}/fhir",
        Path(data_dir) if data_dir else None,
        Path(rules) if rules else None,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
