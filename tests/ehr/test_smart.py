"""SMART Backend Services: the client assertion is an RS384 JWT the EHR can verify with our public
key, and the access token is reused until it is about to expire."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from activities.fhir.auth import ASSERTION_TYPE, SmartBackendAuth
from activities.fhir.client import FhirClient
from workers import dev

CLIENT_ID = "followthrough-test"


class TokenServer:
    """An OAuth token endpoint that checks each client assertion with the registered public key."""

    def __init__(self, public_key, expires_in: int) -> None:
        self.public_key = public_key
        self.expires_in = expires_in
        self.assertions: list[dict] = []
        self.headers: list[dict] = []
        port = dev.free_port()
        self.url = f"http://127.0.0.1:{port}/oauth/token"
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                try:
                    assert form["grant_type"] == "client_credentials"
                    assert form["client_assertion_type"] == ASSERTION_TYPE
                    owner.headers.append(jwt.get_unverified_header(form["client_assertion"]))
                    claims = jwt.decode(
                        form["client_assertion"],
                        owner.public_key,
                        algorithms=["RS384"],
                        audience=owner.url,
                        issuer=CLIENT_ID,
                        options={"require": ["exp", "jti", "sub", "iss", "aud"]},
                    )
                except (AssertionError, KeyError, jwt.PyJWTError):
                    self.send_response(401)
                    self.end_headers()
                    return
                owner.assertions.append(claims)
                token = {
                    "access_token": f"token-{len(owner.assertions)}",
                    "token_type": "bearer",
                    "expires_in": owner.expires_in,
                    "scope": form.get("scope", ""),
                }
                payload = json.dumps(token).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> TokenServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


@pytest.fixture(scope="module", autouse=True)
def readable_patient(ehr_url: str) -> None:
    patient = {"resourceType": "Patient", "id": "smart-reader", "active": True}
    httpx.put(f"{ehr_url}/Patient/smart-reader", json=patient).raise_for_status()


@pytest.fixture
def token_server(key_pair) -> Iterator[TokenServer]:
    with TokenServer(key_pair[1], expires_in=3600) as server:
        yield server


def smart(server: TokenServer, private_key: str) -> SmartBackendAuth:
    return SmartBackendAuth(
        token_url=server.url,
        client_id=CLIENT_ID,
        private_key=private_key,
        key_id="key-1",
        scope="system/*.rs",
    )


async def test_signed_assertion_verifies_and_token_is_cached(ehr_url, key_pair, token_server):
    seen: list[str] = []

    async def capture(request):
        if request.url.path.startswith("/fhir"):
            seen.append(request.headers.get("authorization", ""))

    client = FhirClient(ehr_url, smart(token_server, key_pair[0]))
    client.http.event_hooks["request"].append(capture)
    try:
        await client.read("Patient", "smart-reader")
        await client.read("Patient", "smart-reader")
    finally:
        await client.aclose()
    assert len(token_server.assertions) == 1  # cached: one token for both calls
    claims, header = token_server.assertions[0], token_server.headers[0]
    assert header == {"alg": "RS384", "typ": "JWT", "kid": "key-1"}
    assert claims["sub"] == CLIENT_ID and claims["exp"] - claims["iat"] <= 300
    assert seen == ["Bearer token-1", "Bearer token-1"]


async def test_an_expiring_token_is_renewed(ehr_url, key_pair):
    with TokenServer(key_pair[1], expires_in=0) as server:
        client = FhirClient(ehr_url, smart(server, key_pair[0]))
        try:
            await client.read("Patient", "smart-reader")
            await client.read("Patient", "smart-reader")
        finally:
            await client.aclose()
    assert len(server.assertions) == 2
    assert server.assertions[0]["jti"] != server.assertions[1]["jti"]


async def test_a_key_the_server_does_not_know_is_refused(ehr_url, token_server):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client = FhirClient(ehr_url, smart(token_server, pem))
    try:
        with pytest.raises(Exception) as refused:
            await client.read("Patient", "anyone")
    finally:
        await client.aclose()
    assert getattr(refused.value, "type", None) == "FhirAuthRefused"
    assert refused.value.non_retryable
