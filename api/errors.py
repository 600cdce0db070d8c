"""How the JSON API answers an error: one shape, RFC 9457 problem details, for every 4xx and 5xx.

`{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No case referral-x"}`,
served as `application/problem+json`. `detail` is always one sentence a person can act on; an
invalid request (422) also lists what is wrong where in `errors` (location, message, type),
never the input itself (it may be PHI). Routes raise `HTTPException` as before; the handlers
here give every answer that shape. The web UI's pages keep answering as they do.

Each operation documents the statuses it can answer with `responses(...)`, e.g.
`APIRouter(..., responses=responses(*SIGNED_IN))` on a router and
`@router.post(..., responses=responses(404, 409, said={409: "The case is closed"}))` on a route.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from temporalio.service import RPCError, RPCStatusCode

from workflows.care.orders import validation_problems

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
# Paths answered by the JSON API (bearer tokens); everything else is the web UI's pages.
API_PATHS = ("/api/", "/codec/", "/healthz", "/metrics")
# What Starlette says of a body it could not read; told to the caller as what to do instead.
UNREADABLE_BODY = "There was an error parsing the body"
NOT_JSON = "The request body is not valid JSON; send a JSON document (UTF-8)"
NOT_READABLE = "The request body could not be read as its Content-Type says"
MOST_TOLD = 3  # field errors spelled out in `detail`; `errors` lists them all


class FieldProblem(BaseModel):
    """One thing wrong with a request: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int] = Field(examples=[["body", "subject"]])
    msg: str = Field(examples=["Field required"])
    type: str = Field(examples=["missing"])


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details)."""

    type: str = Field("about:blank", description="A URI naming the kind of problem")
    title: str = Field(description="The status's name", examples=["Not Found"])
    status: int = Field(description="The HTTP status", examples=[404])
    detail: str = Field(
        description="What went wrong, in a sentence a person can act on",
        examples=["No case referral-123"],
    )
    errors: list[FieldProblem] | None = Field(
        None, description="Invalid requests only: each thing wrong, and where"
    )


def problems(err: ValidationError) -> list[dict]:
    """The validation errors of a model, as a 422's `errors`: location, message and type."""
    return validation_problems(err)


def summary(errors: Iterable[dict[str, Any]]) -> str:
    """The field errors in one sentence, for `detail`."""
    told = []
    errors = list(errors)
    for error in errors[:MOST_TOLD]:
        where = ".".join(str(part) for part in error.get("loc") or ())
        told.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    more = len(errors) - MOST_TOLD
    return "Invalid request: " + "; ".join(told) + (f" (and {more} more)" if more > 0 else "")


def problem(
    status_code: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the problem shape."""
    return JSONResponse(
        _body(status_code, detail, errors),
        status_code=status_code,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def problem_body(status_code: int, detail: Any) -> dict[str, Any]:
    """The problem body an HTTPException's detail answers (kept for idempotent replays)."""
    return _body(status_code, *_told(detail, status_code))


def _body(status_code: int, detail: str, errors: list[dict[str, Any]] | None) -> dict[str, Any]:
    body = Problem(
        title=_title(status_code),
        status=status_code,
        detail=detail,
        errors=[FieldProblem.model_validate(e) for e in errors] if errors is not None else None,
    )
    return jsonable_encoder(body, exclude_none=True)


def _told(detail: Any, status_code: int) -> tuple[str, list[dict[str, Any]] | None]:
    """An HTTPException's detail as a sentence and, for a list of field errors, the list."""
    if isinstance(detail, list):
        errors = [
            e if isinstance(e, dict) else {"loc": [], "msg": str(e), "type": "value_error"}
            for e in detail
        ]
        return summary(errors), errors
    if detail is None or detail == "":
        return _title(status_code), None
    return str(detail), None


def _title(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PATHS)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    detail, errors = _told(exc.detail, exc.status_code)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == UNREADABLE_BODY:
        json_sent = "json" in request.headers.get("content-type", "")
        detail = NOT_JSON if json_sent else NOT_READABLE
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # Starlette names the methods of the first route on the path; a path has several.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not answered here; use {', '.join(allowed)}"
    return problem(exc.status_code, detail, errors=errors, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(request.url.path):
            methods |= route.methods
    return sorted(methods)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    found = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in found):
        # Malformed syntax is a 400; 422 is for a well-formed request with invalid content.
        return problem(status.HTTP_400_BAD_REQUEST, NOT_JSON, errors=found)
    return problem(status.HTTP_422_UNPROCESSABLE_CONTENT, summary(found), errors=found)


UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def _unavailable(exc: RPCError) -> bool:
    """Temporal did not answer: down, too slow, or its connection dropped mid-call (a server
    restarting answers UNKNOWN "transport error")."""
    return exc.status in UNAVAILABLE or (
        exc.status == RPCStatusCode.UNKNOWN and exc.message == "transport error"
    )


async def _temporal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RPCError)
    if not _is_api(request) or not _unavailable(exc):
        raise exc  # a server error like any other: logged with its traceback, answered 500
    log.warning("temporal_unavailable", status=exc.status.name)
    return problem(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "Temporal did not answer; try again shortly",
        headers={"Retry-After": "10"},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the exception after this answer.
    return _server_error(request)


def _server_error(request: Request) -> Response:
    if not _is_api(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    return problem(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        f"Something went wrong on our side; nothing more can be told here. Request id "
        f"{request_id}: the API's log has the rest",
    )


def install(app: FastAPI) -> None:
    """Answer every error of the JSON API in the problem shape; the pages keep theirs."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(Exception, _unexpected)


# What each status means wherever it is answered; a route may say more of its own.
MEANINGS = {
    400: "The request body is not valid JSON",
    401: "No valid bearer token: sign in, or send a fresh token",
    403: "Your role or team may not do this",
    404: "Not found",
    409: "Conflicts with the case's state",
    422: "Invalid request: `errors` says what and where",
    502: "The EHR refused the request",
    503: "Temporal or the EHR did not answer; try again shortly",
}
PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}

# The statuses each kind of route can answer, besides its own.
SIGNED_IN = (401, 422)  # a person's bearer token; parameters validated
CASE_SCOPED = (*SIGNED_IN, 403, 404, 503)  # /cases/{case_id}/...: the case is read from Temporal
INTEGRATION = (400, 401, 422, 503)  # an outside system's webhook with its own credential
WITH_BODY = (400,)  # any operation that reads a JSON body


def responses(*statuses: int, said: dict[int, str] | None = None) -> dict[int | str, Any]:
    """The `responses=` of a route or router: each status documented with the problem shape,
    with its standard meaning, or what `said` says of it on this route."""
    said = said or {}
    return {
        code: {
            "description": said.get(code, MEANINGS.get(code, _title(code))),
            "content": PROBLEM_CONTENT,
        }
        for code in sorted({*statuses, *said})
    }


def openapi_components() -> dict[str, Any]:
    """The schemas `responses(...)` refers to, for the OpenAPI document's components."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"Problem": schema, **defs}
