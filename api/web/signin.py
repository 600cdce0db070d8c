"""Signing in and out of the web UI: through the organisation's OpenID Connect provider, or, in
development and test only, by picking a demo person."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import oidc
from api.auth import InvalidToken, actor_from_claims
from api.deps import SettingsDep
from api.web import session
from api.web.render import page
from workers.settings import Settings
from workflows.care.models import Actor, Role

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)

# Development and test sign-in: made-up people, one per role the UI serves.
DEMO_USERS = {
    "cora": ("Cora", Role.COORDINATOR, "cardiology"),
    "ian": ("Ian", Role.COORDINATOR, "imaging"),
    "sam": ("Sam", Role.SUPERVISOR, "cardiology"),
    "ada": ("Ada", Role.COORDINATOR, "authorizations"),
    "sara": ("Sara", Role.SUPERVISOR, "authorizations"),
    "audrey": ("Audrey", Role.AUDITOR, None),
}


def _url(request: Request, settings: Settings, route: str) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.app.url_path_for(route)
    return str(request.url_for(route))


@router.get("/signin")
async def sign_in_page(
    request: Request, settings: SettingsDep, signed_out: bool = False
) -> HTMLResponse:
    identity = oidc.provider(settings)
    provider_sign_out = None
    if signed_out and identity:
        try:
            provider_sign_out = await identity.sign_out_url(
                settings, _url(request, settings, "sign_in_page")
            )
        except oidc.OidcError:
            provider_sign_out = None
    return page(
        request,
        "signin.html",
        {
            "demo": session.dev_sign_in_enabled(settings),
            "users": DEMO_USERS,
            "oidc": identity is not None,
            "signed_out": signed_out,
            "provider_sign_out": provider_sign_out,
        },
    )


@router.post("/signin", dependencies=[session.CsrfChecked])
async def sign_in(settings: SettingsDep, user: Annotated[str, Form()]) -> Response:
    if not session.dev_sign_in_enabled(settings) or user not in DEMO_USERS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such sign-in")
    _, role, team = DEMO_USERS[user]
    return _signed_in(settings, Actor(user_id=user, role=role, team=team))


@router.get("/signin/oidc")
async def sign_in_with_provider(request: Request, settings: SettingsDep) -> Response:
    """Send the browser to the provider, remembering this sign-in's state, nonce and verifier."""
    identity = oidc.provider(settings)
    if identity is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No identity provider is configured")
    pending = oidc.Pending.new()
    try:
        target = await identity.authorization_url(
            settings, pending, _url(request, settings, "oidc_callback")
        )
    except oidc.OidcError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Sign-in is unavailable: {err}") from err
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    session.remember_sign_in(response, settings, pending)
    return response


@router.get("/signin/callback", name="oidc_callback")
async def provider_answered(
    request: Request,
    settings: SettingsDep,
    state: str = "",
    code: str = "",
    error: str = "",
) -> Response:
    """The provider sends the browser back here with a code for the sign-in started here."""
    identity = oidc.provider(settings)
    pending = session.sign_in_under_way(request, settings)
    # Only the browser that started this sign-in holds its state: anything else is refused,
    # so nobody can sign someone else's browser in to their own account (login CSRF).
    if identity is None or pending is None or not state or state != pending.state:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "This sign-in was not started here; sign in again"
        )
    if error or not code:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "The identity provider did not sign you in"
        )
    try:
        claims = await identity.redeem(
            settings, code, pending, _url(request, settings, "oidc_callback")
        )
        actor = actor_from_claims(settings, claims)
    except (oidc.OidcError, InvalidToken) as err:
        log.warning("oidc_sign_in_refused", reason=str(err)[:200])
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"Sign-in refused: {err}") from err
    response = _signed_in(settings, actor)
    session.forget_sign_in(response)
    return response


@router.post("/signout", dependencies=[session.CsrfChecked])
async def sign_out(settings: SettingsDep) -> Response:
    # The sign-in page then offers to sign out of the provider too: a redirect there straight
    # from this form would break the pages' form-action policy.
    target = "/signin?signed_out=true" if oidc.provider(settings) else "/signin"
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    session.clear_session(response)
    return response


def _signed_in(settings: Settings, actor: Actor) -> Response:
    response = RedirectResponse("/queue", status.HTTP_303_SEE_OTHER)
    session.start_session(response, settings, actor)
    return response
