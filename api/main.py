"""The FastAPI app: thin routes over the service layer in api/cases.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response

from api.routes import audit, cases, fhir, health, metrics, notifications, referrals, triggers
from api.web import mount as mount_web
from workers import logs
from workers.client import connect
from workers.database import make_engine
from workers.settings import Settings, get_settings

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.temporal = await connect()
        app.state.engine = make_engine(settings.database_url)
        yield
        app.state.engine.dispose()

    app = FastAPI(
        title="Followthrough",
        version="0.1.0",
        lifespan=lifespan,
        description="Care execution: referrals and follow-ups run as durable cases "
        "until care actually happens.",
    )

    @app.middleware("http")
    async def request_context(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        # Paths may hold case ids (no PHI by design); query strings are not logged.
        log.info(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    for module in (health, referrals, cases, notifications, audit, metrics, triggers, fhir):
        app.include_router(module.router)
    mount_web(app)  # the care-team web UI under /, over the same service layer
    return app
