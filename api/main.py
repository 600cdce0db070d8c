"""The FastAPI app: thin routes over the service layer in api/cases.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.middleware import RequestContext
from api.routes import (
    audit,
    cases,
    codec,
    fhir,
    health,
    messaging,
    metrics,
    notifications,
    pathways,
    patients,
    payer,
    referrals,
    triggers,
)
from api.web import mount as mount_web
from workers import logs
from workers.client import connect
from workers.database import make_engine
from workers.settings import Settings, get_settings


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

    for module in (
        health,
        referrals,
        cases,
        pathways,
        notifications,
        audit,
        metrics,
        triggers,
        fhir,
        payer,
        messaging,
        codec,
        patients,
    ):
        app.include_router(module.router)
    mount_web(app)  # the care-team web UI under /, over the same service layer
    app.add_middleware(RequestContext)  # outermost: its request id covers everything inside
    return app
