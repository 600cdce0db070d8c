"""Sign-in gating and CSRF tokens, without a browser."""

from __future__ import annotations

from starlette.requests import Request

from api.web import session
from workers.settings import Settings

SETTINGS = Settings(jwt_secret="s" * 40, environment="test")


def request_with(cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{session.CSRF_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_the_demo_sign_in_exists_only_in_development_and_test() -> None:
    assert session.dev_sign_in_enabled(Settings(environment="development"))
    assert session.dev_sign_in_enabled(SETTINGS)
    production = Settings(jwt_secret="p" * 40, ledger_anchor_key="a" * 40, environment="production")
    assert not session.dev_sign_in_enabled(production)


def test_a_csrf_token_is_kept_only_if_we_signed_it() -> None:
    issued = session.csrf_token(request_with(), SETTINGS)
    assert session.csrf_token(request_with(issued), SETTINGS) == issued
    forged = issued.split(".")[0] + ".0000"
    assert session.csrf_token(request_with(forged), SETTINGS) != forged
    other_secret = Settings(jwt_secret="t" * 40, environment="test")
    assert session.csrf_token(request_with(issued), other_secret) != issued
