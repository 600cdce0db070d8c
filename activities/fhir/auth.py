"""How the FHIR client proves who it is: nothing (the sandbox), a static bearer token, or SMART
Backend Services (OAuth client_credentials with a signed JWT client assertion, RS384).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx
import jwt
from temporalio.exceptions import ApplicationError

from activities.fhir.failures import unavailable
from workers.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # SMART caps the client assertion's lifetime at five minutes
EXPIRY_MARGIN = 60  # renew a token this many seconds before it expires


class Auth(Protocol):
    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]: ...

    def forget(self) -> None:
        """Drop a cached credential the server has just refused."""


class NoAuth:
    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {}

    def forget(self) -> None:
        pass


@dataclass
class BearerAuth:
    token: str

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def forget(self) -> None:
        pass


class SmartBackendAuth:
    """SMART Backend Services: a short-lived access token per client, cached until near expiry."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        private_key: str,
        key_id: str,
        scope: str,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.private_key = private_key
        self.key_id = key_id
        self.scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def client_assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,  # single use: the server may refuse a replayed assertion
        }
        headers = {"typ": "JWT", "kid": self.key_id} if self.key_id else {"typ": "JWT"}
        return jwt.encode(claims, self.private_key, algorithm="RS384", headers=headers)

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        async with self._lock:  # one token request at a time, however many calls wait on it
            if self._token is None or time.monotonic() >= self._expires_at:
                await self._request_token(http)
        return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        self._token = None

    async def _request_token(self, http: httpx.AsyncClient) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        try:
            response = await http.post(self.token_url, data=form)
        except httpx.HTTPError as err:
            raise unavailable(f"EHR token endpoint unreachable: {type(err).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise unavailable(f"EHR token endpoint answered {response.status_code}")
        if response.status_code != 200:
            # A refused client is a configuration problem: retrying will not fix it.
            raise ApplicationError(
                f"EHR token endpoint refused the client ({response.status_code})",
                type="FhirAuthRefused",
                non_retryable=True,
            )
        body = response.json()
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(lifetime - EXPIRY_MARGIN, lifetime / 2)


def make_auth(settings: Settings) -> Auth:
    if settings.fhir_auth == "bearer":
        if not settings.fhir_bearer_token:
            raise ValueError("FHIR_AUTH=bearer needs FHIR_BEARER_TOKEN")
        return BearerAuth(settings.fhir_bearer_token)
    if settings.fhir_auth == "smart":
        missing = [
            name
            for name, value in (
                ("SMART_TOKEN_URL", settings.smart_token_url),
                ("SMART_CLIENT_ID", settings.smart_client_id),
                ("SMART_PRIVATE_KEY_FILE", settings.smart_private_key_file),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"FHIR_AUTH=smart needs {', '.join(missing)}")
        assert settings.smart_private_key_file is not None
        return SmartBackendAuth(
            token_url=settings.smart_token_url,
            client_id=settings.smart_client_id,
            private_key=settings.smart_private_key_file.read_text(),
            key_id=settings.smart_key_id,
            scope=settings.smart_scope,
        )
    return NoAuth()
