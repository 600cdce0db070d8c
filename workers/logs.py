"""structlog set-up: JSON lines with bound context (request id, case id), never PHI."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys that would carry PHI if anyone logged them. Log lines name cases and patients by id only;
# this is the second line of defence, for a key that slipped through review.
PHI_KEYS = frozenset(
    """name given family patient_name birth_date birthdate birth_date dob phone telecom email
    address mrn ssn note notes text reason diagnostics outcome_text body payload payloads
    summary details comment description""".split()
)


def drop_phi(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Remove PHI-bearing keys from a log line, saying which were removed."""
    dropped = sorted(key for key in event if key.lower() in PHI_KEYS)
    for key in dropped:
        del event[key]
    if dropped:
        event["phi_dropped"] = dropped
    return event


def configure(level: str = "INFO", json: bool = True) -> None:
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        drop_phi,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
