"""Who is using the web UI, and proof that a form came from our own pages.

The session cookie holds the same JWT the API accepts as a bearer token (HttpOnly, SameSite=Lax,
Secure outside development and test). CSRF is a signed double-submit token: a random nonce plus
its HMAC under the JWT secret, kept in its own HttpOnly cookie and rendered into every form
(htmx sends it as a header). A request that changes something must carry both, matching.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request, Response, status

from api.auth import InvalidToken, read_token
from api.deps import SettingsDep
from workers.settings import Settings
from workflows.care.models import Actor

SESSION_COOKIE = "ft_session"
CSRF_COOKIE = "ft_csrf"
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


def set_session(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.jwt_ttl_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def _sign(settings: Settings, nonce: str) -> str:
    digest = hmac.new(settings.jwt_secret.encode(), f"csrf:{nonce}".encode(), hashlib.sha256)
    return f"{nonce}.{digest.hexdigest()}"


def csrf_token(request: Request, settings: Settings) -> str:
    """The CSRF token for this browser: the cookie's, if it is one we signed, else a new one."""
    current = request.cookies.get(CSRF_COOKIE, "")
    nonce = current.split(".", 1)[0]
    if nonce and hmac.compare_digest(current, _sign(settings, nonce)):
        return current
    token = getattr(request.state, "new_csrf", None)
    if token is None:
        token = _sign(settings, secrets.token_urlsafe(24))
        request.state.new_csrf = token
    return token


def remember_csrf(request: Request, response: Response, settings: Settings) -> None:
    """Store a newly issued CSRF token in its cookie (called when a page is rendered)."""
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
    """Refuse a state-changing request whose form field or header does not match the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    nonce = cookie.split(".", 1)[0]
    if not (
        nonce
        and hmac.compare_digest(cookie, _sign(settings, nonce))
        and hmac.compare_digest(sent, cookie)
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form has expired or did not come from this site; reload the page and try again",
        )


def page_user(request: Request, settings: SettingsDep) -> Actor:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    try:
        actor = read_token(settings, token)
    except InvalidToken:
        raise SignInRequired() from None
    structlog.contextvars.bind_contextvars(user_id=actor.user_id, role=actor.role.value)
    return actor


PageUser = Annotated[Actor, Depends(page_user)]
CsrfChecked = Depends(check_csrf)
