"""PAS subscriptions (the R5 Subscriptions Backport on R4) and the notifications they get.

A notification is a `history` Bundle: the subscription-status Parameters first, then the full PAS
response Bundle it is about (PAS spec-61), which the status's notification-event names as focus.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from pas import TOPIC
from validation import refuse

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
DELAYS = (0.5, 1.0, 2.0)  # between delivery attempts

log = logging.getLogger("payer-sandbox")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def accept(body: Any, subscription_id: str) -> dict[str, Any]:
    """A new PAS Subscription, active at once; `refuse` when it is not one."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise refuse("structure", "Expected a FHIR Subscription")
    if body.get("criteria") != TOPIC:
        raise refuse("not-supported", "The only topic is the PAS topic", "Subscription.criteria")
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook" or not channel.get("endpoint"):
        raise refuse(
            "not-supported", "Only rest-hook with an endpoint is supported", "Subscription.channel"
        )
    contents = [
        e.get("valueCode")
        for e in (channel.get("_payload") or {}).get("extension") or []
        if e.get("url") == PAYLOAD_CONTENT
    ]
    if contents != ["full-resource"]:
        raise refuse(
            "not-supported", "PAS subscriptions are full-resource", "Subscription.channel.payload"
        )
    for header in channel.get("header") or []:
        if ": " not in header:
            raise refuse("invalid", "A header reads 'Name: value'", "Subscription.channel.header")
    return {**body, "id": subscription_id, "status": "active", "meta": {"lastUpdated": now()}}


def filter_of(subscription: dict[str, Any]) -> str | None:
    """The orgIdentifier the subscription is limited to, if any (PAS spec-58)."""
    for e in (subscription.get("_criteria") or {}).get("extension") or []:
        if e.get("url") == FILTER_CRITERIA and "=" in (e.get("valueString") or ""):
            return e["valueString"].split("=", 1)[1].strip()
    return None


def notification(
    subscription: dict[str, Any], base_url: str, event_number: int, response: dict[str, Any]
) -> dict[str, Any]:
    """The event notification telling `subscription` about `response` (a PAS response Bundle)."""
    focus = f"{base_url}/Bundle/{response['id']}"
    status = {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "parameter": [
            {
                "name": "subscription",
                "valueReference": {"reference": f"{base_url}/Subscription/{subscription['id']}"},
            },
            {"name": "topic", "valueCanonical": TOPIC},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "events-since-subscription-start", "valueString": str(event_number)},
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(event_number)},
                    {"name": "timestamp", "valueInstant": now()},
                    {"name": "focus", "valueReference": {"reference": focus}},
                ],
            },
        ],
    }
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "timestamp": now(),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status['id']}",
                "resource": status,
                "request": {"method": "GET", "url": f"Subscription/{subscription['id']}/$status"},
                "response": {"status": "200"},
            },
            {
                "fullUrl": focus,
                "resource": response,
                "request": {"method": "GET", "url": f"Bundle/{response['id']}"},
                "response": {"status": "200"},
            },
        ],
    }


def headers_of(subscription: dict[str, Any]) -> dict[str, str]:
    headers = {"Content-Type": "application/fhir+json"}
    for header in subscription["channel"].get("header") or []:
        name, value = header.split(": ", 1)
        headers[name] = value
    return headers


async def deliver(
    http: httpx.AsyncClient, subscription: dict[str, Any], bundle: dict[str, Any]
) -> dict[str, Any]:
    """POST the notification; a failure (no answer, 5xx or 429) is tried again a few times. What
    happened, for GET /sandbox/claims: the endpoint's last status, or the error."""
    endpoint = subscription["channel"]["endpoint"]
    outcome: dict[str, Any] = {"subscription": subscription["id"], "attempts": 0}
    for delay in (0.0, *DELAYS):
        await asyncio.sleep(delay)
        outcome["attempts"] += 1
        try:
            response = await http.post(endpoint, json=bundle, headers=headers_of(subscription))
        except httpx.HTTPError as err:
            outcome.update(status=None, error=type(err).__name__)
            continue
        outcome.update(status=response.status_code, error=None)
        if response.status_code < 500 and response.status_code != 429:
            break
    log.info(
        "notification subscription=%s status=%s attempts=%s",
        subscription["id"],
        outcome["status"],
        outcome["attempts"],
    )
    return outcome
