"""Task queues split by what their work calls: while an EHR that stopped answering holds its
worker, care-team actions, the timers that follow them and the notices to staff go on."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from typer.testing import CliRunner

from activities.fhir.client import FhirClient
from activities.staff import inbox
from api.audit import case_trail
from tests.workflows.referral_kit import COORDINATOR, TEAM, ledger_written, referral_input
from workers.cli import app
from workers.client import connect
from workers.worker import WorkerTuning, build_worker
from workflows.care.models import EventKind
from workflows.care.queues import QueueKind
from workflows.referral.models import AddNote, Assign
from workflows.referral.workflow import ReferralWorkflow
from workflows.triggers.models import Evaluation, TriggerRule
from workflows.triggers.workflow import DecisionTriggersWorkflow


async def never_answers(request: httpx.Request) -> httpx.Response:
    await asyncio.Event().wait()  # until the worker shuts down and cancels the call
    raise AssertionError("unreachable")


async def test_a_stuck_ehr_holds_back_neither_actions_nor_timers_nor_notices(
    temporal_address, engine, task_queue
):
    client = await connect(temporal_address)
    stuck = FhirClient("http://ehr.invalid/fhir/R4", transport=httpx.MockTransport(never_answers))
    # One activity slot per worker: the EHR worker's is taken by the new case's Task mirror,
    # which never returns. Were the EHR's work on the workflow queue, that slot would be the
    # workflow queue's, and the decision triggers below would wait behind it.
    tuning = WorkerTuning(max_concurrent_activities=1, ehr_activities_per_second=5)
    case = referral_input().model_copy(update={"ehr": True})
    async with build_worker(client, engine, task_queue=task_queue, tuning=tuning, fhir=stuck):
        handle = await client.start_workflow(
            ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
        )
        try:
            claimed = await asyncio.wait_for(
                handle.execute_update(ReferralWorkflow.assign, Assign(actor=COORDINATOR)), 10
            )
            assert claimed.owner == COORDINATOR.user_id
            await asyncio.wait_for(
                handle.execute_update(
                    ReferralWorkflow.add_note, AddNote(actor=COORDINATOR, text="called")
                ),
                10,
            )
            # The ledger entries follow each reply after a timer, then a local activity.
            written = await asyncio.wait_for(ledger_written(handle), 10)
            assert written.timeline[-1].kind == EventKind.NOTE
            assert [e.kind for e in case_trail(engine, case.case_id)] == [
                e.kind.value for e in written.timeline
            ]
            # Decision triggers read the app database on the workflow queue and tell the
            # supervisor on the messaging queue.
            alert = TriggerRule(name="any-unowned", metric="unowned_cases", above=-1)
            evaluated = await client.execute_workflow(
                DecisionTriggersWorkflow.run,
                Evaluation(rules=[alert]),
                id=f"triggers-{uuid.uuid4().hex}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=20),
            )
            assert [(c.rule, c.raised) for c in evaluated.changes] == [("any-unowned", True)]
            notices = inbox(engine, user_id="sam", team=TEAM, role="supervisor")
            assert [n.kind for n in notices] == ["exception_raised"]
            assert "task" not in (await handle.query(ReferralWorkflow.detail)).references
        finally:
            await handle.terminate("test finished")


def test_the_worker_polls_the_queues_it_is_told(monkeypatch):
    ran = {}

    async def run(settings, queues):
        ran["queues"] = queues

    monkeypatch.setattr("workers.worker.run", run)
    left = []  # the process would end here, without finalizing
    monkeypatch.setattr("workers.worker.leave", lambda: left.append(True))
    # Logging set up under the test runner would write to its captured, then closed, output.
    monkeypatch.setattr("workers.logs.configure", lambda level, as_json: None)
    assert CliRunner().invoke(app, ["worker"]).exit_code == 0
    assert ran["queues"] == [QueueKind.WORKFLOWS, QueueKind.EHR, QueueKind.MESSAGING]
    assert left == [True]
    assert CliRunner().invoke(app, ["worker", "--queues", "ehr"]).exit_code == 0
    assert ran["queues"] == [QueueKind.EHR]
    refused = CliRunner().invoke(app, ["worker", "--queues", "ehr,fax"])
    assert refused.exit_code == 2 and "workflows, ehr, messaging" in refused.output


@pytest.mark.parametrize(
    ("queues", "polled"),
    [
        (tuple(QueueKind), {"", "-ehr", "-messaging"}),
        ((QueueKind.EHR,), {"-ehr"}),
        ((QueueKind.WORKFLOWS, QueueKind.MESSAGING), {"", "-messaging"}),
    ],
)
async def test_queue_names_come_from_the_deployments_one_name(
    client, engine, task_queue, queues, polled
):
    tuning = WorkerTuning(ehr_activities_per_second=7)
    workers = build_worker(client, engine, task_queue=task_queue, queues=queues, tuning=tuning)
    names = {worker.config()["task_queue"] for worker in workers.workers.values()}
    assert names == {task_queue + suffix for suffix in polled}
    for kind, worker in workers.workers.items():
        limit = worker.config().get("max_task_queue_activities_per_second")
        assert limit == (7 if kind == QueueKind.EHR else None)
