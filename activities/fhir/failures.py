"""What a failed EHR call means for retrying, as the `type` of the ApplicationError it raises."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

UNAVAILABLE = "FhirUnavailable"  # retryable: the EHR is down, slow or throttling
NOT_FOUND = "FhirNotFound"
VERSION_CONFLICT = "FhirVersionConflict"  # 412: someone else changed the resource first
REJECTED = "FhirRequestRejected"  # any other 4xx
INVALID_RESOURCE = "FhirInvalidResource"  # the server sent something that is not valid R4


def unavailable(message: str, delay: timedelta | None = None) -> ApplicationError:
    """The EHR cannot answer now; Temporal retries with backoff (`delay`: the EHR's Retry-After).

    Benign: an outage of an hour means dozens of attempts per case, each already logged as one
    line by the client, so the worker does not add a traceback for each."""
    return ApplicationError(
        message,
        type=UNAVAILABLE,
        next_retry_delay=delay,
        category=ApplicationErrorCategory.BENIGN,
    )
