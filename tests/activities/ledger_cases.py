"""Cases written straight into the ledger, for metrics tests whose answers are worked out by
hand: each event at a number of hours after the case opened."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from activities.ledger.append import append_entries
from workflows.care.chain import GENESIS, link
from workflows.care.models import EventKind, LedgerEntry

START = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)

Event = tuple[float, EventKind, dict, str | None]  # hours after opening, kind, details, stage after


def write_case(
    engine,
    team: str,
    events: list[Event],
    *,
    case_type: str,
    opened_in: str,
    closing: Iterable[str] = (),
) -> None:
    """A case of `case_type` opened at START into stage `opened_in`, then `events`, hash-chained;
    an event entering a stage in `closing` closes it."""
    prefix = "priorauth" if case_type == "prior_auth" else case_type
    case_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    closing = set(closing)
    entries, previous = [], GENESIS
    for seq, (hours, kind, details, stage) in enumerate(
        [(0.0, EventKind.OPENED, {}, opened_in), *events], 1
    ):
        entry = LedgerEntry(
            case_id=case_id,
            seq=seq,
            at=START + hours * HOUR,
            kind=kind,
            actor="system",
            role="system",
            summary=kind.value,
            stage_after=stage,
            details=details,
            case_type=case_type,
            team=team,
            pathway=case_type,
            pathway_version="test",
            prev_hash=previous,
            case_closed=stage in closing,
            hash_scheme=2,
        )
        entry.hash = previous = link(previous, entry.content())
        entries.append(entry)
    append_entries(engine, entries)
