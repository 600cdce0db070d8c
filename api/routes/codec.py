"""The codec server: Temporal's remote codec protocol, so the Temporal Web UI and CLI can show the
payloads this project encrypts, to auditors and admins only.

`POST /codec/decode` and `/codec/encode` take and answer `{"payloads": [...]}` (protobuf JSON).
The caller is named by a bearer token (the CLI's `--codec-auth`) or the web UI's session cookie
(the Temporal UI's "include credentials"); browsers may call only from the configured UI origin.
"""

from __future__ import annotations

import json
import zlib
from typing import Annotated, Any

import structlog
from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from api.auth import InvalidToken, read_token
from api.deps import SettingsDep
from api.errors import NOT_JSON, responses
from api.web.session import SESSION_COOKIE
from workers.codec import EncryptionCodec, MissingKey
from workers.settings import Settings
from workflows.care.models import Actor, Role

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/codec", tags=["codec"])

READERS = (Role.AUDITOR, Role.ADMIN)
ALLOWED_HEADERS = "authorization, content-type, x-namespace"


def cors_headers(settings: Settings) -> dict[str, str]:
    return {
        "access-control-allow-origin": settings.codec_origin,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }


async def same_origin(request: Request, settings: SettingsDep) -> None:
    """A browser names its page's origin; only the configured Temporal UI may call from one."""
    origin = request.headers.get("origin")
    if origin is not None and origin != settings.codec_origin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This origin may not call the codec server")


async def codec_reader(request: Request, settings: SettingsDep) -> Actor:
    headers = cors_headers(settings)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token if scheme.lower() == "bearer" else request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in first", headers=headers)
    try:
        actor = read_token(settings, token)
    except InvalidToken:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Invalid token", headers=headers
        ) from None
    if actor.role not in READERS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Only auditors and admins may read encrypted payloads",
            headers=headers,
        )
    structlog.contextvars.bind_contextvars(user_id=actor.user_id, role=actor.role.value)
    return actor


Reader = Annotated[Actor, Depends(codec_reader)]
SameOrigin = Depends(same_origin)


@router.options("/{operation}", dependencies=[SameOrigin], include_in_schema=False)
async def preflight(settings: SettingsDep) -> Response:
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            **cors_headers(settings),
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": ALLOWED_HEADERS,
            "access-control-max-age": "600",
        },
    )


# Temporal's Payloads as protobuf JSON: bytes in base64; an empty list may be left out, and a
# null field reads as its default.
BYTES = {"type": "string", "format": "byte"}
PAYLOADS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metadata": {
                        "anyOf": [
                            {"type": "object", "additionalProperties": BYTES},
                            {"type": "null"},
                        ]
                    },
                    "data": {"anyOf": [BYTES, {"type": "null"}]},
                },
                "additionalProperties": False,
            },
        }
    },
    "additionalProperties": False,
}
CODEC_OPERATION: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": PAYLOADS}}}
    },
    "responses": {
        200: {
            "description": "The payloads, converted",
            "content": {"application/json": {"schema": {**PAYLOADS, "required": ["payloads"]}}},
        },
        **responses(
            400,
            401,
            403,
            422,
            said={
                403: "Not an auditor or admin, or a browser page from another origin",
                422: 'Not {"payloads": [...]}, or a payload that cannot be decrypted',
            },
        ),
    },
}
# What decrypting a payload the codec did not encrypt (or one damaged) can raise.
UNREADABLE = (InvalidTag, ValueError, zlib.error, DecodeError)


@router.post("/decode", dependencies=[SameOrigin], **CODEC_OPERATION)
async def decode(request: Request, settings: SettingsDep, actor: Reader) -> Response:
    """Decrypt payloads for display (the Temporal UI's event history, `temporal workflow show`)."""
    return await _convert(request, settings, decoding=True)


@router.post("/encode", dependencies=[SameOrigin], **CODEC_OPERATION)
async def encode(request: Request, settings: SettingsDep, actor: Reader) -> Response:
    """Encrypt payloads (the Temporal CLI or UI sending a signal or starting a workflow)."""
    return await _convert(request, settings, decoding=False)


async def _convert(request: Request, settings: Settings, *, decoding: bool) -> Response:
    headers = cors_headers(settings)
    try:
        document = json.loads(await request.body())
    except ValueError:  # not UTF-8, or not JSON
        raise HTTPException(status.HTTP_400_BAD_REQUEST, NOT_JSON, headers=headers) from None
    try:
        if not isinstance(document, dict) or not isinstance(document.get("payloads", []), list):
            raise TypeError
        given = json_format.ParseDict(document, Payloads())
    except (json_format.ParseError, TypeError, ValueError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            'The body must be {"payloads": [...]} as protobuf JSON',
            headers=headers,
        ) from None
    codec = EncryptionCodec(settings.keyring)
    try:
        if decoding:
            converted = await codec.decode(given.payloads)
        else:
            converted = await codec.encode(given.payloads)
    except MissingKey as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, str(err), headers=headers
        ) from None
    except UNREADABLE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "A payload could not be decrypted: it was not encrypted by Followthrough's codec, "
            "or it is damaged",
            headers=headers,
        ) from None
    log.info("codec", operation="decode" if decoding else "encode", count=len(converted))
    body = {"payloads": [], **json_format.MessageToDict(Payloads(payloads=converted))}
    return JSONResponse(body, headers=headers)
