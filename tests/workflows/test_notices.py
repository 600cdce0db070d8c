"""A staff inbox that is down does not hold a case back: the escalation is on the case at once,
and a notice that cannot be delivered within the hour says so on the timeline."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from workflows.care.models import EventKind
from workflows.referral.models import Assign
from workflows.referral.workflow import ReferralWorkflow

from .referral_kit import COORDINATOR, act, ledger_written, open_referral, running


async def test_an_inbox_that_is_down_neither_stalls_the_ladder_nor_hides_the_loss(
    time_skipping, client, engine, task_queue
):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        due = (await ledger_written(handle)).due_at
        with engine.begin() as connection:  # the staff inbox's table is gone: every write fails
            connection.execute(text("ALTER TABLE staff_notice RENAME TO staff_notice_away"))
        # Unowned past its claim deadline (2 business days): escalated.
        await time_skipping.sleep(timedelta(days=5))
        detail = await ledger_written(handle)
        escalated = [e for e in detail.timeline if e.kind == EventKind.ESCALATED]
        lost = [e for e in detail.timeline if e.kind == EventKind.EXCEPTION_RAISED]
        # On the case when the deadline passed, not when (or if) the inbox took the notice...
        assert len(escalated) == 1 and detail.stalled
        assert timedelta(0) <= escalated[0].at - due < timedelta(seconds=1)
        # ...and the notice given up after an hour of trying, on the timeline and counted.
        assert [e.summary for e in lost] == [
            "The escalated notice could not be delivered to the staff inbox"
        ]
        assert timedelta(minutes=50) <= lost[0].at - due <= timedelta(hours=1)  # tried for an hour
        assert detail.counters["undelivered_notices"] == 1
        # The case goes on: an action is taken at once.
        claimed = await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        assert claimed.stage == "awaiting_scheduling"
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE staff_notice_away RENAME TO staff_notice"))
