"""Sign-in gating and CSRF tokens, without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request
from starlette.responses import Response

from api.auth import mint_token
from api.web import session
from workers.settings import Settings
from workflows.care.models import Actor, Role

SETTINGS = Settings(jwt_secret="s" * 40, environment="test")


def request_with(cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{session.CSRF_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_the_demo_sign_in_exists_only_in_development_and_test() -> None:
    assert session.dev_sign_in_enabled(Settings(environment="development"))
    assert session.dev_sign_in_enabled(SETTINGS)
    production = Settings(
        jwt_secret="p" * 40,
        ledger_anchor_key="a" * 40,
        csrf_secret="c" * 40,
        environment="production",
    )
    assert not session.dev_sign_in_enabled(production)


def test_a_csrf_token_is_kept_only_if_we_signed_it() -> None:
    issued = session.csrf_token(request_with(), SETTINGS)
    assert session.csrf_token(request_with(issued), SETTINGS) == issued
    forged = issued.split(".")[0] + ".0000"
    assert session.csrf_token(request_with(forged), SETTINGS) != forged
    other_key = Settings(jwt_secret="s" * 40, csrf_secret="k" * 40, environment="test")
    assert session.csrf_token(request_with(issued), other_key) != issued


def test_csrf_tokens_are_signed_with_a_key_of_their_own() -> None:
    issued = session.csrf_token(request_with(), SETTINGS)
    # Rotating the JWT secret leaves forms valid: the JWT secret signs no CSRF token.
    rotated_jwt = Settings(jwt_secret="r" * 40, environment="test")
    assert session.csrf_token(request_with(issued), rotated_jwt) == issued
    with pytest.raises(ValueError, match="CSRF_SECRET"):  # the development CSRF key
        Settings(jwt_secret="p" * 40, ledger_anchor_key="a" * 40, environment="production")
    with pytest.raises(ValueError, match="differ"):
        Settings(
            jwt_secret="p" * 40,
            ledger_anchor_key="a" * 40,
            csrf_secret="p" * 40,
            environment="production",
        )


def test_a_session_is_short_lived_renewed_in_use_and_ends_at_its_maximum() -> None:
    settings = Settings(jwt_secret="s" * 40, environment="test", session_minutes=15)
    cora = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")
    response = Response()
    session.start_session(response, settings, cora)
    cookie = response.headers["set-cookie"]
    assert "Max-Age=900" in cookie and "HttpOnly" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert session.page_user(request_with_session(token), settings) == cora

    # Signed in 13 hours ago, still renewing: past the 12-hour maximum it is over.
    long_ago = datetime.now(UTC) - timedelta(hours=13)
    stale = mint_token(
        settings,
        user="cora",
        role=Role.COORDINATOR,
        team="cardiology",
        ttl=timedelta(minutes=15),
        signed_in_at=long_ago,
    )
    with pytest.raises(session.SignInRequired):
        session.page_user(request_with_session(stale), settings)

    # Past half its life, the page renews it.
    ageing = mint_token(
        settings, user="cora", role=Role.COORDINATOR, team="cardiology", ttl=timedelta(minutes=5)
    )
    request = request_with_session(ageing)
    session.page_user(request, settings)
    renewed = Response()
    session.remember_csrf(request, renewed, settings)
    assert "ft_session=" in renewed.headers["set-cookie"]


def request_with_session(token: str) -> Request:
    headers = [(b"cookie", f"{session.SESSION_COOKIE}={token}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})
