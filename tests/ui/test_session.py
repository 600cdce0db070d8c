"""Sign-in gating and CSRF tokens, without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from fastapi import HTTPException
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


# CSRF tokens are signed for the session they are issued to: its user and sign-in time.
CORA = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")
IAN = Actor(user_id="ian", role=Role.COORDINATOR, team="imaging")
REFUSED = "did not come from this site"


def session_of(actor: Actor, signed_in_at: datetime | None = None, minutes: int = 15) -> str:
    return mint_token(
        SETTINGS,
        user=actor.user_id,
        role=actor.role,
        team=actor.team,
        ttl=timedelta(minutes=minutes),
        signed_in_at=signed_in_at or datetime.now(UTC),
    )


def page_for(session_token: str | None) -> str:
    """The CSRF token a page rendered for this session carries (a fresh browser: no CSRF cookie)."""
    cookies = {session.SESSION_COOKIE: session_token} if session_token else {}
    return session.csrf_token(post(cookies, None), SETTINGS)


def post(cookies: dict[str, str], sent: str | None) -> Request:
    """A form posted with these cookies and, if given, this token in its CSRF field."""
    body = urlencode({session.CSRF_FIELD: sent} if sent is not None else {}).encode()
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


async def check(session_token: str | None, cookie: str, sent: str) -> None:
    cookies = {session.CSRF_COOKIE: cookie}
    if session_token:
        cookies[session.SESSION_COOKIE] = session_token
    await session.check_csrf(post(cookies, sent), SETTINGS)


async def test_a_form_with_its_sessions_token_is_accepted_even_after_a_renewal() -> None:
    ageing = session_of(CORA, minutes=5)
    token = page_for(ageing)
    await check(ageing, token, token)

    # Past half its life the session is renewed: a new session cookie, the same sign-in.
    request = post({session.SESSION_COOKIE: ageing, session.CSRF_COOKIE: token}, None)
    session.page_user(request, SETTINGS)
    assert session.csrf_token(request, SETTINGS) == token  # the page keeps the token
    response = Response()
    session.remember_csrf(request, response, SETTINGS)
    renewed = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert renewed != ageing
    await check(renewed, token, token)


async def test_a_token_with_a_bad_signature_is_refused() -> None:
    cora = session_of(CORA)
    nonce = page_for(cora).split(".")[0]
    forged = f"{nonce}.{'0' * 64}"  # the right shape, not our signature
    with pytest.raises(HTTPException, match=REFUSED) as refused:
        await check(cora, forged, forged)
    assert refused.value.status_code == 403


async def test_a_token_issued_to_another_users_session_is_refused() -> None:
    cora, ian = session_of(CORA), session_of(IAN)
    ians = page_for(ian)
    await check(ian, ians, ians)  # good for Ian's session
    with pytest.raises(HTTPException, match=REFUSED):
        await check(cora, ians, ians)
    # A page of Cora's does not keep it either: it issues her own.
    assert (
        session.csrf_token(
            post({session.SESSION_COOKIE: cora, session.CSRF_COOKIE: ians}, None), SETTINGS
        )
        != ians
    )


async def test_a_form_token_that_differs_from_the_cookie_is_refused() -> None:
    cora = session_of(CORA)
    cookie, other = page_for(cora), page_for(cora)  # both signed for Cora's session
    assert cookie != other
    await check(cora, other, other)
    with pytest.raises(HTTPException, match=REFUSED):
        await check(cora, cookie, other)
    with pytest.raises(HTTPException, match=REFUSED):
        await check(cora, cookie, "")


async def test_signing_out_clears_the_token_and_a_replay_of_it_is_refused() -> None:
    then = datetime.now(UTC) - timedelta(minutes=10)
    old_session = session_of(CORA, signed_in_at=then)
    old = page_for(old_session)
    await check(old_session, old, old)

    response = Response()
    session.clear_session(response)
    cleared = response.headers.getlist("set-cookie")
    assert any(c.startswith(f"{session.CSRF_COOKIE}=") and "Max-Age=0" in c for c in cleared)
    assert any(c.startswith(f"{session.SESSION_COOKIE}=") and "Max-Age=0" in c for c in cleared)

    # Replayed after sign-out, with no session or with Cora's next one, it is refused.
    with pytest.raises(HTTPException, match=REFUSED):
        await check(None, old, old)
    with pytest.raises(HTTPException, match=REFUSED):
        await check(session_of(CORA), old, old)
