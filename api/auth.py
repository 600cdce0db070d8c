"""Bearer JWT authentication: who is calling, in which role and team.

Two kinds of token are accepted: the project's own (HS256 under JWT_SECRET: the web session and
`followthrough token`), and, when OIDC_API_AUDIENCE is set, the identity provider's access tokens
for that audience (signature checked against its published keys, `iss` and `aud` checked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from api.oidc import OidcError, provider
from workers.settings import Settings
from workflows.care.models import Actor, Role

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


# When a provider's claim lists several roles, the one that may do most is taken.
ROLE_PRECEDENCE = [Role.ADMIN, Role.SUPERVISOR, Role.COORDINATOR, Role.AUDITOR]


def mint_token(
    settings: Settings,
    *,
    user: str,
    role: Role,
    team: str | None = None,
    ttl: timedelta | None = None,
    signed_in_at: datetime | None = None,
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
    if signed_in_at:
        claims["auth_time"] = int(signed_in_at.timestamp())
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
    return _actor(claims["sub"], role, claims.get("team"))


def _actor(user: str, role: Role, team: str | None) -> Actor:
    if role == Role.SYSTEM:
        raise InvalidToken("system is not a role a person can hold")
    if role in (Role.COORDINATOR, Role.SUPERVISOR) and not team:
        raise InvalidToken(f"a {role.value} token needs a team")
    return Actor(user_id=user, role=role, team=team)


def actor_from_claims(settings: Settings, claims: dict[str, Any]) -> Actor:
    """Who the provider says this is: user, role and team from the configured claims."""
    user = claims.get(settings.oidc_user_claim) or claims.get("sub")
    held = claims.get(settings.oidc_role_claim)
    held = set(held if isinstance(held, list) else [held])
    role = next((r for r in ROLE_PRECEDENCE if r.value in held), None)
    if not user or role is None:
        raise InvalidToken("the identity provider gave this account no Followthrough role")
    team = claims.get(settings.oidc_team_claim)
    if isinstance(team, list):
        team = team[0] if team else None
    return _actor(str(user), role, str(team) if team else None)


async def read_bearer(settings: Settings, token: str) -> Actor:
    """The caller of an API request: the project's own token, or the provider's access token."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError as err:
        raise InvalidToken(str(err)) from err
    identity = provider(settings)
    if algorithm == ALGORITHM or identity is None or not settings.oidc_api_audience:
        return read_token(settings, token)
    try:
        claims = await identity.verify(token, audience=settings.oidc_api_audience)
    except OidcError as err:
        raise InvalidToken(str(err)) from err
    return actor_from_claims(settings, claims)
