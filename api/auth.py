"""Bearer JWT authentication: who is calling, in which role and team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from workers.settings import Settings
from workflows.care.models import Actor, Role

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


def mint_token(
    settings: Settings,
    *,
    user: str,
    role: Role,
    team: str | None = None,
    ttl: timedelta | None = None,
) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": user,
        "role": Role(role).value,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + (ttl or timedelta(minutes=settings.jwt_ttl_minutes)),
    }
    if team:
        claims["team"] = team
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def read_token(settings: Settings, token: str) -> Actor:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "role"]},
        )
        role = Role(claims["role"])
    except (jwt.PyJWTError, ValueError) as err:
        raise InvalidToken(str(err)) from err
    if role == Role.SYSTEM:
        raise InvalidToken("system is not a role a person can hold")
    if role in (Role.COORDINATOR, Role.SUPERVISOR) and not claims.get("team"):
        raise InvalidToken(f"a {role.value} token needs a team")
    return Actor(user_id=claims["sub"], role=role, team=claims.get("team"))
