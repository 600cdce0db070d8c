"""The one PAS Subscription Followthrough holds at the payer: decisions on pended requests are
pushed to the API's webhook (api/routes/payer.py) rather than polled for (PAS spec-8, -9)."""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from activities.fhir.client import FHIR_JSON
from activities.payer import codes
from activities.payer.bundle import SENDER
from workers.settings import Settings

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/api/v1/payer/notifications"


def notification_endpoint(settings: Settings) -> str:
    """Where the payer sends notifications: the API as the payer reaches it."""
    base = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    return base.rstrip("/") + WEBHOOK_PATH


def subscription(endpoint: str, token: str) -> dict[str, Any]:
    """A PAS Subscription (the R4 backport profile): the PAS topic, filtered to this sending
    system, rest-hook to `endpoint` with our bearer token, full-resource payloads."""
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Followthrough: decisions on pended prior authorization requests",
        "criteria": codes.TOPIC,
        "_criteria": {
            "extension": [{"url": codes.FILTER_CRITERIA, "valueString": f"orgIdentifier={SENDER}"}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": FHIR_JSON,
            "_payload": {
                "extension": [{"url": codes.PAYLOAD_CONTENT, "valueCode": "full-resource"}]
            },
            "header": [f"Authorization: Bearer {token}"],
        },
    }


async def ensure_subscription(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> str | None:
    """Create the Subscription unless the payer already holds one for our endpoint with the
    current token (one with an old token is replaced). Answers its id; None without a payer."""
    if not settings.payer_base_url:
        return None
    base = settings.payer_base_url.rstrip("/")
    wanted = subscription(notification_endpoint(settings), settings.payer_notification_token)
    async with httpx.AsyncClient(
        timeout=settings.payer_timeout_seconds,
        headers={"Accept": FHIR_JSON},
        transport=transport,
    ) as http:
        found = await http.get(
            f"{base}/Subscription", params={"url": wanted["channel"]["endpoint"]}
        )
        found.raise_for_status()
        for entry in found.json().get("entry") or []:
            held = entry.get("resource") or {}
            if held.get("criteria") != codes.TOPIC or held.get("status") not in (
                "requested",
                "active",
            ):
                continue
            if held.get("channel", {}).get("header") == wanted["channel"]["header"]:
                return held["id"]
            (await http.delete(f"{base}/Subscription/{held['id']}")).raise_for_status()
        created = await http.post(
            f"{base}/Subscription", json=wanted, headers={"Content-Type": FHIR_JSON}
        )
        created.raise_for_status()
    log.info("payer_subscription_created", subscription=created.json()["id"])
    return created.json()["id"]
