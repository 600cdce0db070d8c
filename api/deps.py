"""Dependencies as Annotated aliases: the Temporal client, settings, the database, the caller.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread
pool, a hop that costs more than the work, and whatever it binds for logging would not stay
bound for the rest of the request."""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BeforeValidator
from sqlalchemy import Engine
from temporalio.client import Client

from api.auth import InvalidToken, read_bearer
from workers.settings import Settings
from workflows.care.models import Actor, Role

bearer = HTTPBearer(auto_error=False)
RFC_3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _date_time(value: Any) -> Any:
    # Pydantic would read `0.5` as seconds since 1970; a person means a date and a time.
    if isinstance(value, str) and not RFC_3339.match(value):
        raise ValueError("expected a date-time with its offset, e.g. 2026-01-31T17:00:00Z")
    return value


async def single_values(request: Request) -> None:
    """Refuse a query parameter given twice unless it takes a list (as the document says):
    `?team=a&team=b` would otherwise quietly mean `team=b`."""
    given = [name for name, _ in request.query_params.multi_items()]
    repeated = {name for name in given if given.count(name) > 1}
    if not repeated:
        return
    route = request.scope.get("route")
    path = getattr(route, "path_format", request.url.path)
    operation = request.app.openapi()["paths"].get(path, {}).get(request.method.lower(), {})
    lists = {
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and _takes_list(parameter.get("schema", {}))
    }
    once = sorted(repeated - lists)
    if once:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {"loc": ["query", name], "msg": "give this parameter once", "type": "value_error"}
                for name in once
            ],
        )


def _takes_list(schema: dict[str, Any]) -> bool:
    return any(s.get("type") == "array" for s in [schema, *schema.get("anyOf", [])])


SingleValues = Depends(single_values)


# A moment in a query string: an RFC 3339 date-time with its offset, nothing else.
Instant = Annotated[AwareDatetime, BeforeValidator(_date_time)]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
EngineDep = Annotated[Engine, Depends(get_engine)]


async def current_user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Sign in: a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        actor = await read_bearer(settings, credentials.credentials)
    except InvalidToken as err:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"Invalid token: {err}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from err
    structlog.contextvars.bind_contextvars(user_id=actor.user_id, role=actor.role.value)
    return actor


CurrentUser = Annotated[Actor, Depends(current_user)]


def require_role(*roles: Role):
    async def check(actor: CurrentUser) -> Actor:
        if actor.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"The {actor.role.value} role cannot do this (needs: {allowed})",
            )
        return actor

    return Depends(check)


Caseworker = Annotated[Actor, require_role(Role.COORDINATOR, Role.SUPERVISOR, Role.ADMIN)]


def integration_token(
    credentials: HTTPAuthorizationCredentials | None,
    settings: Settings,
    *,
    expected: str,
    development: str,
    variable: str,
    who: str,
) -> None:
    """Check the bearer token an outside system (the EHR, a payer) sends with its notifications:
    production refuses the development token or a short one."""
    if settings.environment == "production" and (expected == development or len(expected) < 32):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Set {variable} (32+ characters)")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"The {who} credential is missing or wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )
