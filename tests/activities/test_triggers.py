"""Decision triggers raise an alert when a threshold is crossed and clear it when back under."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, select

from activities.staff import StaffNoticeRecord
from activities.triggers import states
from api.audit import case_trail, verify_chain
from tests.postgres import on_both_databases
from tests.workflows.referral_kit import COORDINATOR, ledger_written, open_referral, running
from workflows.referral.models import Assign
from workflows.referral.workflow import ReferralWorkflow
from workflows.triggers.models import Evaluation, TriggerRule
from workflows.triggers.workflow import DecisionTriggersWorkflow

pytestmark = on_both_databases

RULES = [
    TriggerRule(name="unowned-backlog", metric="unowned_cases", above=1, older_than_days=2),
    TriggerRule(name="exception-rate", metric="exception_rate", above=0.15, window_days=7),
]


async def evaluate(env, task_queue):
    # Without this the test server would skip ahead to the next timer while it waits.
    with env.auto_time_skipping_disabled():
        return await env.client.execute_workflow(
            DecisionTriggersWorkflow.run,
            Evaluation(rules=RULES),
            id=f"triggers-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )


async def test_alerts_raise_and_clear(time_skipping, client, engine, task_queue):
    async with running(client, engine, task_queue):
        cases = [await open_referral(client, task_queue) for _ in range(2)]
        first = await evaluate(time_skipping, task_queue)
        assert first.changes == []  # nothing is old enough, nothing escalated yet

        await time_skipping.sleep(timedelta(days=5))  # past the 2-business-day claim window
        crossed = await evaluate(time_skipping, task_queue)
        assert {(c.rule, c.team, c.value, c.raised) for c in crossed.changes} == {
            ("unowned-backlog", "cardiology", 2.0, True),
            ("exception-rate", "cardiology", 1.0, True),
        }
        assert (await evaluate(time_skipping, task_queue)).changes == []  # still raised: no repeat

        for case in cases:
            await case.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR))
            await ledger_written(case)
        cleared = await evaluate(time_skipping, task_queue)
        assert [(c.rule, c.value, c.raised) for c in cleared.changes] == [
            ("unowned-backlog", 0.0, False)
        ]

    assert {(s.rule, s.raised) for s in states(engine)} == {
        ("unowned-backlog", False),
        ("exception-rate", True),
    }
    with Session(engine) as session:
        notices = session.exec(
            select(StaffNoticeRecord).where(StaffNoticeRecord.case_id.startswith("alert-"))
        ).all()  # type: ignore[attr-defined]
    assert sorted((n.kind, n.role, n.case_id) for n in notices) == [
        ("exception_cleared", "supervisor", "alert-unowned-backlog-cardiology"),
        ("exception_raised", "supervisor", "alert-exception-rate-cardiology"),
        ("exception_raised", "supervisor", "alert-unowned-backlog-cardiology"),
    ]
    trail = case_trail(engine, "alert-unowned-backlog-cardiology")
    assert [e.kind for e in trail] == ["exception_raised", "exception_cleared"]
    assert verify_chain(trail[0].case_id, trail, None).intact
