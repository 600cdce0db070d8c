"""What a failed payer call means for retrying, as the `type` of the ApplicationError it raises."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

UNAVAILABLE = "PayerUnavailable"  # retryable: the payer is down, slow or throttling
REJECTED = "PayerRequestRejected"  # a 4xx: the request must change before it is sent again
INVALID_RESPONSE = "PayerInvalidResponse"  # the payer answered something that is not PAS
NOT_FOUND = "PayerRequestNotFound"  # an inquiry matched no request


def unavailable(message: str, delay: timedelta | None = None) -> ApplicationError:
    """The payer cannot answer now; Temporal retries with backoff (`delay`: its Retry-After).
    Benign, as the EHR's: each attempt is already one log line."""
    return ApplicationError(
        message,
        type=UNAVAILABLE,
        next_retry_delay=delay,
        category=ApplicationErrorCategory.BENIGN,
    )


def refused(message: str, kind: str = REJECTED) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)
