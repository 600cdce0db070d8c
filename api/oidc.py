"""Sign-in through an OpenID Connect provider (Keycloak, Entra ID, Okta, ...): the authorization
code flow with PKCE, the provider's discovery document and its keys (JWKS).

The browser is sent to the provider with a fresh state, nonce and PKCE verifier, kept meanwhile
in a short-lived cookie signed with the CSRF key; the provider sends it back with a code, which
is exchanged for an ID token whose signature, issuer, audience, expiry and nonce are checked.
The provider's access tokens for the API's audience are accepted as bearer tokens as well.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from workers.settings import Settings

SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
METADATA_TTL = 3600  # seconds: providers rotate keys ahead, announcing them in the JWKS
LEEWAY = 30  # seconds of clock difference tolerated with the provider


class OidcError(Exception):
    """The provider's answer cannot be trusted or used; the message says why, with no token."""


@dataclass
class Pending:
    """A sign-in under way: what the provider must send back (state) or sign (nonce)."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Pending:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Provider:
    """One issuer's discovery document and keys, fetched when first needed and kept an hour."""

    issuer: str
    metadata: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = 0.0

    async def discover(self) -> dict[str, Any]:
        if not self.metadata or time.monotonic() - self.fetched_at > METADATA_TTL:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await _get_json(url)
            if metadata.get("issuer") != self.issuer:
                raise OidcError("the discovery document names another issuer")
            self.metadata, self.fetched_at = metadata, time.monotonic()
            self.keys = {}
        return self.metadata

    async def key(self, kid: str | None) -> jwt.PyJWK:
        metadata = await self.discover()
        if kid not in self.keys:  # a key not seen yet: the provider may have rotated
            jwks = jwt.PyJWKSet.from_dict(await _get_json(metadata["jwks_uri"]))
            self.keys = {key.key_id: key for key in jwks.keys if key.key_id}
            if kid is None and len(jwks.keys) == 1:
                self.keys[None] = jwks.keys[0]  # type: ignore[index]
        if kid not in self.keys:
            raise OidcError("the token is signed with a key the provider does not publish")
        return self.keys[kid]

    async def verify(self, token: str, *, audience: str, nonce: str | None = None) -> dict:
        """The claims of a JWT the provider signed for `audience`, or OidcError."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise OidcError("not a JWT") from err
        if header.get("alg") not in SIGNING_ALGORITHMS:
            raise OidcError("the token's signing algorithm is not accepted")
        key = await self.key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as err:
            raise OidcError(f"the token was refused: {err}") from err
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the ID token's nonce is not this sign-in's")
        return claims

    async def authorization_url(self, settings: Settings, pending: Pending, redirect: str) -> str:
        metadata = await self.discover()
        query = {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect,
            "scope": settings.oidc_scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        return f"{metadata['authorization_endpoint']}?{urlencode(query)}"

    async def redeem(self, settings: Settings, code: str, pending: Pending, redirect: str) -> dict:
        """Exchange the code for tokens; the verified claims of the ID token."""
        metadata = await self.discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": pending.verifier,
            "client_id": settings.oidc_client_id,
        }
        auth = (
            (settings.oidc_client_id, settings.oidc_client_secret)
            if settings.oidc_client_secret
            else None
        )
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(metadata["token_endpoint"], data=form, auth=auth)
        if answer.status_code != 200:
            raise OidcError(f"the provider refused the code ({answer.status_code})")
        id_token = answer.json().get("id_token")
        if not id_token:
            raise OidcError("the provider answered without an ID token")
        return await self.verify(id_token, audience=settings.oidc_client_id, nonce=pending.nonce)

    async def sign_out_url(self, settings: Settings, signed_out: str) -> str | None:
        endpoint = (await self.discover()).get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": settings.oidc_client_id, "post_logout_redirect_uri": signed_out}
        return f"{endpoint}?{urlencode(query)}"


_providers: dict[str, Provider] = {}


def provider(settings: Settings) -> Provider | None:
    """The configured provider (None when OIDC_ISSUER is unset), shared by the process."""
    if not settings.oidc_issuer:
        return None
    return _providers.setdefault(settings.oidc_issuer, Provider(settings.oidc_issuer))


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            return answer.json()
    except (httpx.HTTPError, json.JSONDecodeError) as err:
        raise OidcError(f"the identity provider did not answer ({type(err).__name__})") from err
