"""The audit ledger: every event once, in order, hash-chained; tampering is found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from activities.ledger.anchor import Anchor
from activities.ledger.append import append_entries
from activities.ledger.tables import CaseSummary, LedgerHead, LedgerRow
from api.audit import case_head, case_trail, check_case, verify_chain
from tests.workflows.referral_kit import COORDINATOR, act, ledger_written, open_referral, running
from workflows.care.chain import link
from workflows.care.models import LedgerEntry
from workflows.referral.models import Assign, MarkCompleted, MarkScheduled
from workflows.referral.workflow import ReferralWorkflow


async def run_a_case(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        await handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        visit = await time_skipping.get_current_time() + timedelta(days=2)
        await handle.execute_update(
            ReferralWorkflow.mark_scheduled,
            MarkScheduled(actor=COORDINATOR, appointment="Appointment/a1", appointment_at=visit),
        )
        await time_skipping.sleep(timedelta(days=3))
        done = await act(
            handle,
            ReferralWorkflow.mark_completed,
            MarkCompleted(actor=COORDINATOR, report="DiagnosticReport/r1"),
        )
        await handle.result()
    return done


async def test_every_event_reaches_the_ledger_in_order(time_skipping, client, engine, task_queue):
    done = await run_a_case(time_skipping, client, engine, task_queue)
    trail = case_trail(engine, done.case_id)
    assert [(e.seq, e.kind, e.actor) for e in trail] == [
        (e.seq, e.kind.value, e.actor) for e in done.timeline
    ]
    assert trail[-1].evidence[0].reference == "DiagnosticReport/r1"
    assert {(e.pathway, e.team, e.case_type) for e in trail} == {
        ("referral", "cardiology", "referral")
    }
    report = verify_chain(done.case_id, trail, done)
    assert report.intact and report.temporal_checked and report.entries == len(done.timeline)

    with Session(engine) as session:
        summary = session.get(CaseSummary, done.case_id)
    assert summary.completed and summary.closed_stage == "completed"
    assert summary.first_scheduled_at is not None and summary.evidence_on_file


async def test_an_actions_entries_follow_its_reply_and_the_check_allows_for_them(
    time_skipping, client, engine, task_queue
):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        claimed = await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        # Whatever the reply counts as pending is the newest of its timeline, and the ledger read
        # now holds at least the rest: the chain check, told the count, finds nothing missing.
        trail = case_trail(engine, claimed.case_id)
        assert len(trail) >= len(claimed.timeline) - claimed.ledger_pending
        report = verify_chain(claimed.case_id, trail, claimed)
        assert report.intact and report.temporal_checked

        detail = await ledger_written(handle)
        trail = case_trail(engine, detail.case_id)
        assert [e.kind for e in trail] == ["opened", "assigned", "stage_changed"]
        assert [e.kind for e in trail] == [e.kind.value for e in detail.timeline]
        # Without the pending count, a ledger that lags looks broken: the count is what tells.
        behind = verify_chain(detail.case_id, trail[:-2], detail)
        assert not behind.intact and behind.first_broken_seq == len(trail) - 1
        lagging = verify_chain(
            detail.case_id, trail[:-2], detail.model_copy(update={"ledger_pending": 2})
        )
        assert lagging.intact and lagging.pending == 2


async def test_appending_again_changes_nothing(time_skipping, client, engine, task_queue):
    done = await run_a_case(time_skipping, client, engine, task_queue)
    entries = [
        LedgerEntry.model_validate(e.model_dump(exclude={"recorded_at"}))
        for e in case_trail(engine, done.case_id)
    ]
    assert append_entries(engine, entries) == 0  # a retried or replayed write
    with Session(engine) as session:
        assert len(session.exec(select(LedgerRow)).all()) == len(entries)

    forged = entries[1].model_copy(update={"hash": "f" * 64})
    with pytest.raises(ApplicationError) as conflict:
        append_entries(engine, [forged])
    assert conflict.value.type == "LedgerConflict"


async def test_chain_check_finds_an_edited_and_a_deleted_row(
    time_skipping, client, engine, task_queue
):
    done = await run_a_case(time_skipping, client, engine, task_queue)
    with Session(engine) as session:
        row = session.exec(select(LedgerRow).where(LedgerRow.seq == 3)).one()
        row.summary = "Nothing happened here"
        session.add(row)
        session.commit()
    # The summary's words are not hashed (a rewording must not break replaying cases), but the
    # seal the ledger put on the row when it stored it covers them.
    edited = check_case(engine, done.case_id, None, Anchor())
    assert (edited.intact, edited.first_broken_seq) == (False, 3)
    assert "edited" in edited.problem
    with Session(engine) as session:
        row = session.exec(select(LedgerRow).where(LedgerRow.seq == 3)).one()
        row.stage_after = "completed"
        session.add(row)
        session.commit()
    rehashed = verify_chain(done.case_id, case_trail(engine, done.case_id), None)
    assert (rehashed.intact, rehashed.first_broken_seq) == (False, 3)

    with Session(engine) as session:
        session.delete(session.exec(select(LedgerRow).where(LedgerRow.seq == 2)).one())
        session.commit()
    deleted = verify_chain(done.case_id, case_trail(engine, done.case_id), None)
    assert (deleted.intact, deleted.first_broken_seq) == (False, 2)
    assert "missing" in deleted.problem


def _rows(engine, case_id: str) -> list[LedgerRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(LedgerRow).where(LedgerRow.case_id == case_id).order_by(LedgerRow.seq)
            )
        )


def _rewrite(engine, rows: list[LedgerRow]) -> None:
    with Session(engine) as session:
        for row in rows:
            session.merge(row)
        session.commit()


async def test_a_cut_tail_a_forged_entry_and_a_rehashed_chain_are_found_without_temporal(
    time_skipping, client, engine, task_queue
):
    """After Temporal has forgotten the case (no timeline to compare with), the signed head alone
    tells a whole chain from one someone with write access to the database has reshaped."""
    done = await run_a_case(time_skipping, client, engine, task_queue)
    anchor = Anchor()
    whole = check_case(engine, done.case_id, None, anchor)
    assert whole.intact and whole.anchored and whole.entries == done.events
    head = case_head(engine, done.case_id)

    # A forged entry appended at the end, correctly linked and hashed.
    last = LedgerEntry.model_validate(
        case_trail(engine, done.case_id)[-1].model_dump(exclude={"recorded_at", "seal"})
    )
    extra = last.model_copy(
        update={"seq": last.seq + 1, "prev_hash": last.hash, "kind": "note", "summary": "ok"}
    )
    extra.hash = link(extra.prev_hash, extra.content())
    data = extra.model_dump(mode="json") | {"at": extra.at}
    with Session(engine) as session:
        session.add(LedgerRow(**data))
        session.commit()
    appended = check_case(engine, done.case_id, None, anchor)
    assert (appended.intact, appended.first_broken_seq) == (False, last.seq + 1)
    assert "added after the signed head" in appended.problem
    # ...and the head moved to it, signed with a key other than the ledger's.
    with Session(engine) as session:
        moved = session.get(LedgerHead, done.case_id)
        moved.last_seq, moved.head_hash = extra.seq, extra.hash
        moved.signature = Anchor("someone-elses-key-" + "x" * 30).sign(
            done.case_id, extra.seq, extra.hash
        )
        session.add(moved)
        session.commit()
    resigned = check_case(engine, done.case_id, None, anchor)
    assert not resigned.intact and "signed head does not hold" in resigned.problem
    with Session(engine) as session:
        session.delete(session.exec(select(LedgerRow).where(LedgerRow.seq == last.seq + 1)).one())
        session.merge(head)
        session.commit()
    assert check_case(engine, done.case_id, None, anchor).intact

    # The tail cut: the last two entries deleted.
    rows = _rows(engine, done.case_id)
    with Session(engine) as session:
        for row in rows[-2:]:
            session.delete(session.get(LedgerRow, row.id))
        session.commit()
    cut = check_case(engine, done.case_id, None, anchor)
    assert (cut.intact, cut.first_broken_seq) == (False, len(rows) - 1)
    assert "the tail was cut" in cut.problem
    _rewrite(engine, rows[-2:])
    assert check_case(engine, done.case_id, None, anchor).intact

    # Re-hashed from the second entry on, every link consistent: the chain alone looks whole.
    rows, previous = _rows(engine, done.case_id), None
    events = case_trail(engine, done.case_id)
    for row, event in zip(rows, events, strict=True):
        if row.seq >= 2:
            entry = LedgerEntry.model_validate(event.model_dump(exclude={"recorded_at", "seal"}))
            if row.seq == 2:
                entry.details = row.details = {"owner": "mallory"}
            entry.prev_hash = previous
            row.prev_hash, row.hash = previous, link(previous, entry.content())
            row.seal = None
        previous = row.hash
    _rewrite(engine, rows)
    assert verify_chain(done.case_id, case_trail(engine, done.case_id), None).intact
    rehashed = check_case(engine, done.case_id, None, anchor)
    assert not rehashed.intact and rehashed.first_broken_seq == len(rows)
    assert "re-hashed" in rehashed.problem
