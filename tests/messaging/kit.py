"""What messaging tests share: the webhooks served for real, a case stand-in that records the
signals it gets, and Twilio's signature written out apart from the code under test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from temporalio import workflow
from temporalio.client import Client

from api.routes import messaging
from workers import dev
from workers.settings import Settings
from workflows.care.messaging import DELIVERY_SIGNAL, REPLY_SIGNAL, DeliveryNews, ReplyNews
from workflows.care.models import CaseDetail, OrderSummary, TaskState


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, written here on its own: HMAC-SHA1 keyed with the auth
    token over the full URL, then each POST parameter's name and value sorted by name; base64."""
    message = url
    for name in sorted(params):
        message += name + params[name]
    mac = hmac.new(auth_token.encode("utf-8"), message.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


@asynccontextmanager
async def serve_webhooks(client: Client, engine: Engine, settings: Settings) -> AsyncIterator[str]:
    """The messaging routes (webhooks and the case's message list) served by uvicorn on a free
    loopback port, with the given Temporal client, app database and settings (PUBLIC_URL set to
    where they are served); the SMS sandbox at TWILIO_BASE_URL posts patients' texts there.
    Yields the public URL: give it to the sending activities as PUBLIC_URL too, so the status
    callbacks come here."""
    port = dev.free_port()
    url = f"http://127.0.0.1:{port}"
    app = FastAPI()
    app.include_router(messaging.router)
    app.state.settings = settings.model_copy(update={"public_url": url})
    app.state.temporal, app.state.engine = client, engine
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    sandbox = settings.twilio_base_url.rstrip("/")
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(
            f"{sandbox}/sandbox/config",
            json={"inbound_url": url + messaging.INBOUND_PATH},
        )
        try:
            yield url
        finally:
            await http.post(f"{sandbox}/sandbox/config", json={"inbound_url": None})
            server.should_exit = True
            await task


@workflow.defn(name="MessagingSignalRecorder", sandboxed=False)
class SignalRecorder:
    """Stands in for a case that messages the patient: records what the webhooks tell it, and
    answers the case detail query as a cardiology referral (for the routes that read it)."""

    def __init__(self) -> None:
        self.replies: list[ReplyNews] = []
        self.deliveries: list[DeliveryNews] = []

    @workflow.query(name="detail")
    def detail(self) -> CaseDetail:
        return CaseDetail(
            case_id=workflow.info().workflow_id,
            case_type="referral",
            stage="awaiting_scheduling",
            task=TaskState(status="accepted", business_status="awaiting_scheduling"),
            priority="routine",
            team="cardiology",
            order=OrderSummary(resource="ServiceRequest/sr-1", patient="Patient/p", service="x"),
            opened_at=datetime(2026, 11, 2, tzinfo=UTC),
        )

    @workflow.signal(name=REPLY_SIGNAL)
    def replied(self, news: ReplyNews) -> None:
        self.replies.append(news)

    @workflow.signal(name=DELIVERY_SIGNAL)
    def delivered(self, news: DeliveryNews) -> None:
        self.deliveries.append(news)

    @workflow.query
    def received(self) -> tuple[list[ReplyNews], list[DeliveryNews]]:
        return self.replies, self.deliveries

    @workflow.run
    async def run(self, days: int = 30) -> None:
        await workflow.wait_condition(lambda: False, timeout=timedelta(days=days))


async def until(check, within: float = 10.0):  # noqa: ANN001
    """Await `check()` (sync or async) until it returns something truthy, or time runs out."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)
