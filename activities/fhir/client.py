"""An async FHIR R4 REST client for activities: httpx, R4B models, failures Temporal understands.

Every failure becomes an `ApplicationError` whose `type` says what retrying can do about it:
timeouts, connection errors, 429 and 5xx are retryable (`Retry-After` sets the next delay); other
4xx are not, and carry the server's OperationOutcome codes and a capped, scrubbed diagnostic for
the case timeline (see outcome.py): the server's own text may describe the patient, so it never
leaves this module, and nothing of it is logged.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.fhir import outcome
from activities.fhir.auth import Auth, NoAuth, make_auth
from activities.fhir.failures import (
    INVALID_RESOURCE,
    NOT_FOUND,
    REJECTED,
    VERSION_CONFLICT,
    unavailable,
)
from workers.settings import Settings

log = structlog.get_logger(__name__)

FHIR_JSON = "application/fhir+json"
MAX_MESSAGE = 300  # a failure message lands in workflow history: keep one bad answer small
MAX_RETRY_AFTER = timedelta(minutes=30)


def cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        delay = timedelta(seconds=float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        delay = timedelta(seconds=when.timestamp() - time.time())
    return min(max(delay, timedelta(seconds=1)), MAX_RETRY_AFTER)


def parse(resource: dict[str, Any]) -> Resource:
    """Validate a resource as FHIR R4 (R4B models) and return the typed model."""
    try:
        model_class = get_fhir_model_class(resource.get("resourceType", ""))
        return model_class.model_validate(resource)
    except (KeyError, ValueError, ValidationError) as err:
        count = len(err.errors()) if isinstance(err, ValidationError) else 1
        raise ApplicationError(
            f"The EHR returned an invalid {resource.get('resourceType', 'resource')} "
            f"({count} validation errors)",
            type=INVALID_RESOURCE,
            non_retryable=True,
        ) from None


class FhirClient:
    """One EHR's FHIR R4 base URL. Holds a connection pool: make one per worker and reuse it."""

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        timeout: float = 20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth or NoAuth()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5)),
            headers={"Accept": FHIR_JSON},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirClient:
        return cls(
            settings.fhir_base_url, make_auth(settings), timeout=settings.fhir_timeout_seconds
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- interactions --------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return await self._json("GET", f"{resource_type}/{resource_id}", resource_type)

    async def read_if_exists(self, reference: str) -> dict[str, Any] | None:
        """The resource named "Type/id", or None when the EHR has no such resource."""
        kind, _, rid = reference.partition("/")
        try:
            return await self.read(kind, rid)
        except ApplicationError as err:
            if err.type == NOT_FOUND:
                return None
            raise

    async def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        kind = resource["resourceType"]
        return await self._json("POST", kind, kind, json=resource)

    async def create_unless_exists(
        self, resource: dict[str, Any], if_none_exist: str
    ) -> tuple[dict[str, Any] | None, bool]:
        """FHIR conditional create: the EHR stores the resource only if nothing matches the
        search `if_none_exist` (e.g. `identifier=system|value`), else it answers with the match.

        A create whose answer was lost (a timeout after the EHR stored it) can then be sent again
        without making a second resource. Answers the resource (None when the EHR answered
        without a body) and whether it was created now; 412 if several already match."""
        kind = resource["resourceType"]
        response = await self._send(
            "POST", kind, kind, json=resource, headers={"If-None-Exist": if_none_exist}
        )
        return (response.json() if response.content else None), response.status_code == 201

    async def update(
        self, resource: dict[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]:
        """PUT the resource; with `if_match` (a versionId) only if nobody changed it since."""
        kind = resource["resourceType"]
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else {}
        return await self._json(
            "PUT", f"{kind}/{resource['id']}", kind, json=resource, headers=headers
        )

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every match, following the bundle's next links (on the same server only)."""
        return [match async for page in self.pages(resource_type, params) for match in page]

    async def pages(
        self, resource_type: str, params: dict[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The matches page by page, following the bundle's next links for as long as there are
        any (on the same server only), so a caller can take or heartbeat as each page arrives."""
        async for bundle in self._bundles(resource_type, params):
            yield [
                entry["resource"]
                for entry in bundle.get("entry") or []
                if entry.get("resource", {}).get("resourceType") == resource_type
                and (entry.get("search") or {}).get("mode", "match") == "match"
            ]

    async def search_including(
        self, resource_type: str, params: dict[str, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every match and every resource the search included (`_include`), across pages."""
        matches: list[dict[str, Any]] = []
        included: list[dict[str, Any]] = []
        async for bundle in self._bundles(resource_type, params):
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") or {}
                mode = (entry.get("search") or {}).get("mode")
                if resource.get("resourceType") == resource_type and mode in (None, "match"):
                    matches.append(resource)
                elif resource.get("resourceType"):
                    included.append(resource)
        return matches, included

    async def _bundles(
        self, resource_type: str, params: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        bundle = await self._json("GET", resource_type, resource_type, params=params)
        while True:
            yield bundle
            following = next(
                (link["url"] for link in bundle.get("link") or [] if link["relation"] == "next"),
                None,
            )
            if not following:
                return
            if urlsplit(following).netloc != urlsplit(self.base_url).netloc:
                # Credentials go to the EHR only, never to a host a bundle points at.
                raise ApplicationError(
                    "The EHR's next-page link points at another host",
                    type=REJECTED,
                    non_retryable=True,
                )
            bundle = await self._json("GET", following, resource_type)

    # -- transport --------------------------------------------------------------------------------

    async def _json(self, method: str, path: str, resource_type: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, resource_type, **kwargs)).json()

    async def _send(
        self,
        method: str,
        path: str,
        resource_type: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The EHR's answer when it is a success; every failure as an `ApplicationError`."""
        url = path if path.startswith("http") else f"{self.base_url}/{path}"
        for attempt in (1, 2):
            auth = await self.auth.headers(self.http)
            body_headers = {"Content-Type": FHIR_JSON} if json is not None else {}
            try:
                response = await self.http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers={**auth, **body_headers, **(headers or {})},
                )
            except httpx.TimeoutException:
                raise self._unavailable(method, resource_type, "timed out") from None
            except httpx.HTTPError as err:
                raise self._unavailable(method, resource_type, type(err).__name__) from None
            if response.status_code == 401 and attempt == 1 and auth:
                self.auth.forget()  # an expired or revoked token: fetch a new one, once
                continue
            break
        if response.status_code < 300:
            return response
        raise self._failure(method, resource_type, response)

    def _unavailable(
        self, method: str, resource_type: str, why: str, delay: timedelta | None = None
    ) -> ApplicationError:
        log.warning("fhir_unavailable", method=method, resource_type=resource_type, why=why)
        return unavailable(f"EHR unavailable ({method} {resource_type}: {why})", delay)

    def _failure(
        self, method: str, resource_type: str, response: httpx.Response
    ) -> ApplicationError:
        status = response.status_code
        if status == 429 or status >= 500:
            return self._unavailable(method, resource_type, f"HTTP {status}", retry_after(response))
        try:
            text = outcome.summary(response.json())
        except ValueError:
            text = ""
        kind = {404: NOT_FOUND, 410: NOT_FOUND, 412: VERSION_CONFLICT}.get(status, REJECTED)
        log.info("fhir_refused", method=method, resource_type=resource_type, status=status)
        return ApplicationError(
            cap(f"EHR refused {method} {resource_type} (HTTP {status}): {text or 'no details'}"),
            type=kind,
            non_retryable=True,
        )
