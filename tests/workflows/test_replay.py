"""Every recorded history (referral, prior authorization) still replays on today's code (no non-determinism), and
recomputes the very ledger entries it wrote: a wording change that passes the Replayer but would
change a stored hash fails here, before a running case meets it as a ledger conflict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workflows.ledger_replay import HISTORIES, ledger_file, replayed_entries
from workflows.care.chain import GENESIS, link
from workflows.care.models import LedgerEntry

RECORDED = sorted(
    p
    for pattern in ("referral-*.json", "prior-auth-*.json")
    for p in HISTORIES.glob(pattern)
    if ".ledger" not in p.suffixes
)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays_and_rewrites_its_ledger(path: Path):
    recorded = json.loads(ledger_file(path).read_text())
    replayed = await replayed_entries(path)
    assert [(e["seq"], e["hash"]) for e in replayed] == [(e["seq"], e["hash"]) for e in recorded]
    # And each recorded hash holds up against its own content, linked to the one before (a run
    # that continued a case goes on from the chain head its predecessor left).
    previous = recorded[0]["prev_hash"] if recorded else GENESIS
    for entry in recorded:
        stored = LedgerEntry.model_validate(entry)
        assert stored.prev_hash == previous
        assert link(previous, stored.content()) == stored.hash
        previous = stored.hash


def test_there_are_recorded_histories_with_their_ledgers():
    assert RECORDED, "record one with python -m tests.workflows.record_histories"
    assert all(ledger_file(path).exists() for path in RECORDED)


def test_a_continued_case_goes_on_from_its_predecessors_chain_head():
    runs = sorted(HISTORIES.glob("referral-v3-run*.ledger.json"), key=lambda p: int(p.stem[15:-7]))
    assert len(runs) >= 2
    previous, seq = GENESIS, 0
    for run in runs:
        entries = json.loads(run.read_text())
        assert entries[0]["prev_hash"] == previous and entries[0]["seq"] == seq + 1
        previous, seq = entries[-1]["hash"], entries[-1]["seq"]


def test_a_case_that_messages_its_patient_is_among_the_histories():
    # referral-v4: the outreach cadence, consent, delivery reports, replies, the reminder.
    assert HISTORIES / "referral-v4.json" in RECORDED
