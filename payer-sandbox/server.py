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

import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from payer import Decide, Payer, Rule
from pydantic import ValidationError
from subscriptions import accept
from validation import Refused, refuse, request_bundle

FHIR_JSON = "application/fhir+json"


def fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


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
