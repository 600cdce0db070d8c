"""Prior authorization over Da Vinci PAS: `$submit` a request (or its cancel), `$inquire` after it.

The request Bundle is built from the EHR (the Patient, the Coverage and its payer, the provider,
the order, the documents, and whatever those reference) and sent to the payer's FHIR base. The
payer's words never leave this module except as OperationOutcome codes and a scrubbed diagnostic
(activities/fhir/outcome.py): a refusal may describe the patient.
"""

from __future__ import annotations

import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from temporalio import activity

from activities.fhir import outcome
from activities.fhir.client import FHIR_JSON, FhirClient, cap, retry_after
from activities.payer.bundle import (
    cancel_claim,
    claim_identifier,
    inquiry_claim,
    references,
    request_bundle,
    request_claim,
)
from activities.payer.failures import INVALID_RESPONSE, NOT_FOUND, refused, unavailable
from activities.payer.models import PasDecision, PasInquiry, PasRequest
from activities.payer.response import InvalidPasResponse, parse_response
from workers.settings import Settings

log = structlog.get_logger(__name__)

MAX_RESOURCES = 60  # referenced resources in one request: beyond it, something is wrong


class PayerActivities:
    """The payer at one FHIR base URL, and the EHR the requests are built from."""

    def __init__(
        self,
        fhir: FhirClient,
        payer_base_url: str | None,
        *,
        timeout: float = 20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.fhir = fhir
        self.base_url = (payer_base_url or "").rstrip("/")
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5)),
            headers={"Accept": FHIR_JSON},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, fhir: FhirClient) -> PayerActivities:
        return cls(fhir, settings.payer_base_url, timeout=settings.payer_timeout_seconds)

    async def aclose(self) -> None:
        await self.http.aclose()

    @activity.defn(name="pas_submit")
    async def submit(self, request: PasRequest) -> PasDecision:
        """Send the request to the payer (or, with `cancel`, cancel the one named by its
        submission) and answer the payer's decision: A1, A3, A4 pended, C cancelled..."""
        insurer, resources = await self._gather(
            request.patient,
            request.coverage,
            request.provider,
            [request.order, *request.supporting],
        )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        claims = [request_claim(request, insurer, created)]
        if request.cancel:  # a Claim Update first; the Claim it cancels goes too (PAS spec-65)
            claims.insert(0, cancel_claim(request, insurer, created))
        transaction = claims[0]["identifier"][0]["value"]
        bundle = request_bundle(transaction, created, claims, resources, self.fhir.base_url)
        answer = await self._post("Claim/$submit", bundle)
        return self._decision(answer, request.case_id, request.submission)

    @activity.defn(name="pas_inquire")
    async def inquire(self, inquiry: PasInquiry) -> PasDecision:
        """Ask the payer where a request stands (query by example). PAS asks clients to wait for
        the notification rather than poll: this is for a person who asks, or a lost notice."""
        insurer, resources = await self._gather(
            inquiry.patient, inquiry.coverage, inquiry.provider, []
        )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        claim = inquiry_claim(inquiry, insurer, created)
        bundle = request_bundle(
            f"inquiry-{uuid.uuid4()}", created, [claim], resources, self.fhir.base_url
        )
        answer = await self._post("Claim/$inquire", bundle)
        if answer.get("resourceType") == "Parameters":  # PAS 2.x: 0..* response Bundles
            found = [
                p.get("resource")
                for p in answer.get("parameter") or []
                if p.get("name") == "return" and p.get("resource")
            ]
            if not found:
                raise refused(
                    f"The payer knows no request "
                    f"{claim_identifier(inquiry.case_id, inquiry.submission)}",
                    NOT_FOUND,
                )
            answer = found[0]
        return self._decision(answer, inquiry.case_id, inquiry.submission)

    # -- the request's resources, from the EHR -------------------------------------------------

    async def _gather(
        self, patient: str, coverage_ref: str, provider: str, more: list[str]
    ) -> tuple[str, list[dict[str, Any]]]:
        """The insurer (the Coverage's payer) and every resource the Claim references, and every
        resource those reference, each once (PAS spec-13, -14)."""
        coverage = await self._read(coverage_ref)
        insurer = next(
            (
                ref
                for payor in coverage.get("payor") or []
                if (ref := payor.get("reference") or "").startswith("Organization/")
            ),
            None,
        )
        if insurer is None:
            raise refused(f"{coverage_ref} names no payer Organization")
        if (coverage.get("beneficiary") or {}).get("reference") != patient:
            raise refused(f"{coverage_ref} does not cover {patient}")
        found = {coverage_ref: coverage}
        waiting = deque([patient, insurer, provider, *more, *references(coverage)])
        while waiting:
            reference = waiting.popleft()
            if reference in found:
                continue
            if len(found) >= MAX_RESOURCES:
                raise refused(f"The request references more than {MAX_RESOURCES} resources")
            found[reference] = await self._read(reference)
            waiting.extend(references(found[reference]))
        first = [patient, coverage_ref, insurer, provider]
        return insurer, [found[r] for r in first] + [
            resource for ref, resource in found.items() if ref not in first
        ]

    async def _read(self, reference: str) -> dict[str, Any]:
        kind, _, rid = reference.partition("/")
        return await self.fhir.read(kind, rid)

    # -- the payer ----------------------------------------------------------------------------

    async def _post(self, operation: str, bundle: dict[str, Any]) -> dict[str, Any]:
        if not self.base_url:
            raise refused("No payer is configured (PAYER_BASE_URL)")
        try:
            response = await self.http.post(
                f"{self.base_url}/{operation}", json=bundle, headers={"Content-Type": FHIR_JSON}
            )
        except httpx.TimeoutException:
            raise self._unavailable(operation, "timed out") from None
        except httpx.HTTPError as err:
            raise self._unavailable(operation, type(err).__name__) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise self._unavailable(operation, f"HTTP {status}", response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 300:
            log.info("payer_refused", operation=operation, status=status)
            said = outcome.summary(body) or "no details"
            raise refused(cap(f"Payer refused {operation} (HTTP {status}): {said}"))
        if not isinstance(body, dict):
            raise refused(f"The payer's answer to {operation} is not JSON", INVALID_RESPONSE)
        return body

    def _unavailable(
        self, operation: str, why: str, response: httpx.Response | None = None
    ) -> Exception:
        log.warning("payer_unavailable", operation=operation, why=why)
        delay = retry_after(response) if response is not None else None
        return unavailable(f"Payer unavailable ({operation}: {why})", delay)

    def _decision(self, answer: dict[str, Any], case_id: str, submission: int) -> PasDecision:
        try:
            decision = parse_response(answer)
        except InvalidPasResponse as err:
            raise refused(cap(str(err)), INVALID_RESPONSE) from None
        if (decision.case_id, decision.submission) != (case_id, submission):
            raise refused("The payer answered about another request", INVALID_RESPONSE)
        return decision
