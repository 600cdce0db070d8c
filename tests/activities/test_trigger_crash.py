"""An alert's change, its ledger entry and its notice survive a crash at any point of the step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select
from temporalio import workflow
from temporalio.worker import Replayer, Worker

from activities import triggers
from activities.ledger.tables import CaseSummary
from activities.staff import StaffActivities, StaffNoticeRecord
from activities.triggers import TriggerActivities, evaluate, states
from api.audit import case_trail, verify_chain
from workflows.care.models import EventKind, Role, StaffNotice
from workflows.triggers.models import Evaluation, EvaluationResult, TriggerRule
from workflows.triggers.workflow import DecisionTriggersWorkflow

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ALERT = "alert-unowned-backlog-cardiology"
# One unclaimed case opened five days ago is over a threshold of zero: the alert must be raised.
RULES = [TriggerRule(name="unowned-backlog", metric="unowned_cases", above=0, older_than_days=2)]


class Crash(Exception):
    """The worker dies here: nothing after this point of the attempt happens."""


def unclaimed_case(engine) -> None:
    with Session(engine) as session:
        session.add(
            CaseSummary(
                case_id="referral-crash-1",
                case_type="referral",
                team="cardiology",
                opened_at=NOW - timedelta(days=5),
            )
        )
        session.commit()


def recorded(engine) -> tuple[list[str], list[tuple[str, str]]]:
    with Session(engine) as session:
        notices = session.exec(
            select(StaffNoticeRecord).where(StaffNoticeRecord.case_id == ALERT)
        ).all()
    trail = case_trail(engine, ALERT)
    assert verify_chain(ALERT, trail, None).intact
    return [e.kind for e in trail], [(n.kind, n.role) for n in notices]


@pytest.mark.parametrize("crash", ["before the ledger entry", "after the ledger entry"])
def test_a_retry_after_a_crash_mid_step_records_the_alert_once(engine, monkeypatch, crash):
    unclaimed_case(engine)
    append = triggers.append_entries
    attempts = []

    def crashing_append(bind, entries, anchor=None):
        attempts.append(len(entries))
        if len(attempts) == 1:
            if crash == "after the ledger entry":
                append(bind, entries, anchor)
            raise Crash
        return append(bind, entries, anchor)

    monkeypatch.setattr(triggers, "append_entries", crashing_append)
    evaluation = Evaluation(rules=RULES, now=NOW)
    with pytest.raises(Crash):
        evaluate(engine, evaluation)
    retried = evaluate(engine, evaluation)  # Temporal retries the activity with the same input

    assert attempts == [1, 1]
    assert [(c.team, c.value, c.raised) for c in retried.changes] == [("cardiology", 1.0, True)]
    assert recorded(engine) == (["exception_raised"], [("exception_raised", "supervisor")])
    assert [(s.rule, s.team, s.raised) for s in states(engine)] == [
        ("unowned-backlog", "cardiology", True)
    ]


def test_a_retry_after_the_answer_was_lost_records_nothing_more(engine):
    unclaimed_case(engine)
    evaluation = Evaluation(rules=RULES, now=NOW)
    evaluate(engine, evaluation)  # done, but the worker died before Temporal heard of it
    retried = evaluate(engine, evaluation)

    assert retried.changes == []
    assert recorded(engine) == (["exception_raised"], [("exception_raised", "supervisor")])


def test_raising_then_clearing_is_two_entries_and_two_notices(engine):
    unclaimed_case(engine)
    evaluate(engine, Evaluation(rules=RULES, now=NOW))
    with Session(engine) as session:
        case = session.get(CaseSummary, "referral-crash-1")
        case.first_assigned_at = NOW
        session.add(case)
        session.commit()
    cleared = evaluate(engine, Evaluation(rules=RULES, now=NOW + timedelta(hours=1)))

    assert [(c.value, c.raised) for c in cleared.changes] == [(0.0, False)]
    kinds, notices = recorded(engine)
    assert kinds == ["exception_raised", "exception_cleared"]
    assert sorted(notices) == [
        ("exception_cleared", "supervisor"),
        ("exception_raised", "supervisor"),
    ]


async def test_the_schedules_run_retries_a_crashed_evaluation_into_one_entry_and_one_notice(
    time_skipping, engine, task_queue, monkeypatch
):
    with Session(engine) as session:  # unclaimed for five days, by the workflow's clock
        session.add(
            CaseSummary(
                case_id="referral-crash-2",
                case_type="referral",
                team="cardiology",
                opened_at=datetime.now(UTC) - timedelta(days=5),
            )
        )
        session.commit()
    append, attempts = triggers.append_entries, []

    def crashing_append(bind, entries, anchor=None):
        attempts.append(len(entries))
        append(bind, entries, anchor)
        if len(attempts) == 1:
            raise Crash  # the entry is written, the activity dies before its transaction ends

    monkeypatch.setattr(triggers, "append_entries", crashing_append)
    worker = Worker(
        time_skipping.client,
        task_queue=task_queue,
        workflows=[DecisionTriggersWorkflow],
        activities=[TriggerActivities(engine).evaluate, StaffActivities(engine).notify],
    )
    async with worker:
        result = await time_skipping.client.execute_workflow(
            DecisionTriggersWorkflow.run,
            Evaluation(rules=RULES),
            id=f"triggers-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )

    assert attempts == [1, 1]  # the activity was retried once
    assert [(c.team, c.raised) for c in result.changes] == [("cardiology", True)]
    assert recorded(engine) == (["exception_raised"], [("exception_raised", "supervisor")])


@workflow.defn(name="DecisionTriggers", sandboxed=False)
class DecisionTriggersBeforeThePatch:
    """The workflow as runs started before the evaluation wrote notices recorded it."""

    @workflow.run
    async def run(self, evaluation: Evaluation) -> EvaluationResult:
        evaluation = evaluation.model_copy(update={"now": workflow.now()})
        result = await workflow.execute_activity_method(
            TriggerActivities.evaluate, evaluation, start_to_close_timeout=timedelta(minutes=2)
        )
        for change in result.changes:
            await workflow.execute_activity_method(
                StaffActivities.notify,
                StaffNotice(
                    case_id=change.alert_id,
                    team=change.team,
                    role=Role.SUPERVISOR,
                    kind=EventKind.EXCEPTION_RAISED,
                    message=f"{change.rule} crossed its threshold for team {change.team}",
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
        return result


async def test_runs_recorded_before_the_patch_still_replay(time_skipping, engine, task_queue):
    unclaimed_case(engine)
    worker = Worker(
        time_skipping.client,
        task_queue=task_queue,
        workflows=[DecisionTriggersBeforeThePatch],
        activities=[TriggerActivities(engine).evaluate, StaffActivities(engine).notify],
    )
    async with worker:
        handle = await time_skipping.client.start_workflow(
            DecisionTriggersBeforeThePatch.run,
            Evaluation(rules=RULES),
            id=f"triggers-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
        assert len((await handle.result()).changes) == 1  # so the history has a notify activity
    history = await handle.fetch_history()

    replayer = Replayer(
        workflows=[DecisionTriggersWorkflow], data_converter=time_skipping.client.data_converter
    )
    await replayer.replay_workflow(history)
