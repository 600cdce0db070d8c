"""Who is using the web UI, and proof that a form came from our own pages.

The session cookie holds a JWT the API also accepts as a bearer token (HttpOnly, SameSite=Lax,
Secure outside development and test). It lives SESSION_MINUTES and is renewed by the pages while
in use, up to SESSION_MAX_HOURS after sign-in: signing out removes it, and a copy taken before
is dead within minutes, not hours. CSRF is a signed double-submit token: a random nonce plus an
HMAC under CSRF_SECRET (a key of its own) over the nonce and the session it was issued to (the
user and their sign-in time, which a renewal keeps; no session before sign-in), kept in its own
HttpOnly cookie and rendered into every form (htmx sends it as a header). A request that changes
something must carry both, signed for the session it comes with; signing out clears both.
A sign-in through the identity provider keeps its state, nonce and PKCE verifier in a cookie
signed with the same key, for ten minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
import structlog
from fastapi import Depends, HTTPException, Request, Response, status

from api.auth import InvalidToken, mint_token, read_token
from api.deps import SettingsDep
from api.oidc import Pending
from workers.settings import Settings
from workflows.care.models import Actor

SESSION_COOKIE = "ft_session"
CSRF_COOKIE = "ft_csrf"
SIGN_IN_COOKIE = "ft_signin"
SIGN_IN_SECONDS = 600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the sign-in page."""


def dev_sign_in_enabled(settings: Settings) -> bool:
    # The pick-a-demo-user page exists only where no real identity provider is expected.
    return settings.environment in ("development", "test")


def _secure(settings: Settings) -> bool:
    # Development and test run on plain-HTTP loopback; everywhere else cookies need HTTPS.
    return settings.environment == "production"


def start_session(
    response: Response, settings: Settings, actor: Actor, signed_in_at: datetime | None = None
) -> None:
    """Sign `actor` in (or renew their session): a short-lived token in the session cookie."""
    token = mint_token(
        settings,
        user=actor.user_id,
        role=actor.role,
        team=actor.team,
        ttl=timedelta(minutes=settings.session_minutes),
        signed_in_at=signed_in_at or datetime.now(UTC),
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
        path="/",
    )


def clear_session(response: Response) -> None:
    """Sign out: the session and its CSRF token go together."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


def _live_session(request: Request, settings: Settings) -> tuple[Actor, datetime, int] | None:
    """The session this request carries, if it is ours and live: who, since when, expiry."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        actor = read_token(settings, token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (InvalidToken, jwt.PyJWTError):
        return None
    signed_in_at = datetime.fromtimestamp(claims.get("auth_time", claims["iat"]), UTC)
    if datetime.now(UTC) - signed_in_at > timedelta(hours=settings.session_max_hours):
        return None
    return actor, signed_in_at, claims["exp"]


def _csrf_holder(request: Request, settings: Settings) -> tuple[str, int]:
    """Whom a CSRF token is for: the session's user and sign-in time (both kept by a renewal,
    so its forms stay valid), or nobody before sign-in."""
    live = _live_session(request, settings)
    if live is None:
        return "", 0
    actor, signed_in_at, _ = live
    return actor.user_id, int(signed_in_at.timestamp())


def _sign_csrf(settings: Settings, nonce: str, holder: tuple[str, int]) -> str:
    message = json.dumps(["csrf", nonce, *holder], separators=(",", ":"))
    digest = hmac.new(settings.csrf_secret.encode(), message.encode(), hashlib.sha256)
    return f"{nonce}.{digest.hexdigest()}"


def _csrf_signed_for(settings: Settings, token: str, holder: tuple[str, int]) -> bool:
    nonce = token.split(".", 1)[0]
    return bool(nonce) and hmac.compare_digest(token, _sign_csrf(settings, nonce, holder))


def _sign(settings: Settings, nonce: str) -> str:
    digest = hmac.new(settings.csrf_secret.encode(), f"csrf:{nonce}".encode(), hashlib.sha256)
    return f"{nonce}.{digest.hexdigest()}"


def remember_sign_in(response: Response, settings: Settings, pending: Pending) -> None:
    """Keep a sign-in under way for the provider's answer: signed, HttpOnly, ten minutes."""
    body = json.dumps(
        {**pending.__dict__, "until": int(time.time()) + SIGN_IN_SECONDS}, separators=(",", ":")
    )
    value = base64.urlsafe_b64encode(body.encode()).decode()
    response.set_cookie(
        SIGN_IN_COOKIE,
        _sign(settings, value),
        max_age=SIGN_IN_SECONDS,
        httponly=True,
        samesite="lax",  # sent on the provider's redirect back, a top-level navigation
        secure=_secure(settings),
        path="/signin",
    )


def sign_in_under_way(request: Request, settings: Settings) -> Pending | None:
    """The sign-in this browser started here, if its cookie is ours and still fresh."""
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    value = cookie.split(".", 1)[0]
    if not value or not hmac.compare_digest(cookie, _sign(settings, value)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value))
    except ValueError:
        return None
    if data.pop("until", 0) < time.time():
        return None
    return Pending(**data)


def forget_sign_in(response: Response) -> None:
    response.delete_cookie(SIGN_IN_COOKIE, path="/signin")


def csrf_token(request: Request, settings: Settings) -> str:
    """The CSRF token for this browser: the cookie's, if we signed it for this request's session,
    else a new one for it."""
    holder = _csrf_holder(request, settings)
    current = request.cookies.get(CSRF_COOKIE, "")
    if _csrf_signed_for(settings, current, holder):
        return current
    token = getattr(request.state, "new_csrf", None)
    if token is None:
        token = _sign_csrf(settings, secrets.token_urlsafe(24), holder)
        request.state.new_csrf = token
    return token


def remember_csrf(request: Request, response: Response, settings: Settings) -> None:
    """Store a newly issued CSRF token in its cookie, and renew a session past its half-life
    (called when a page is rendered)."""
    renew = getattr(request.state, "renew_session", None)
    if renew is not None:
        start_session(response, settings, *renew)
    token = getattr(request.state, "new_csrf", None)
    if token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=_secure(settings),
            path="/",
        )


async def check_csrf(request: Request, settings: SettingsDep) -> None:
    """Refuse a state-changing request whose form field or header does not match the cookie, or
    whose cookie was not signed for the session the request comes with."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    holder = _csrf_holder(request, settings)
    if not (_csrf_signed_for(settings, cookie, holder) and hmac.compare_digest(sent, cookie)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form has expired or did not come from this site; reload the page and try again",
        )


def page_user(request: Request, settings: SettingsDep) -> Actor:
    live = _live_session(request, settings)
    if live is None:
        raise SignInRequired()
    actor, signed_in_at, expires = live
    if expires - time.time() < settings.session_minutes * 30:  # past half its life
        request.state.renew_session = (actor, signed_in_at)
    structlog.contextvars.bind_contextvars(user_id=actor.user_id, role=actor.role.value)
    return actor


PageUser = Annotated[Actor, Depends(page_user)]
CsrfChecked = Depends(check_csrf)
