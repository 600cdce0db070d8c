"""A referral that lives six months: its history stays bounded (it continues as new), and its
queue entry, deadline, owner, ladder and ledger chain go on unbroken across the runs."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.fhir.models import EhrEvent
from activities.ledger.anchor import Anchor
from api.audit import case_trail, check_case
from workers.histories import case_runs
from workflows.care import search
from workflows.referral.models import AddNote, Assign, Channel, OutreachOutcome, RecordOutreach
from workflows.referral.workflow import ReferralWorkflow

from .referral_kit import (
    COORDINATOR,
    act,
    close_of_business,
    ledger_written,
    open_referral,
    running,
)

EVENTS_PER_RUN = 1_200  # the kit continues as new past 1,000, once its handlers have finished
BYTES_PER_RUN = 1024 * 1024


async def test_six_months_and_300_actions_stay_bounded_and_unbroken(
    time_skipping, client, engine, task_queue
):
    async with running(client, engine, task_queue):
        handle = await open_referral(client, task_queue)
        opened = await act(handle, ReferralWorkflow.assign, Assign(actor=COORDINATOR))
        for i in range(300):
            if i % 3 == 0:
                await handle.execute_update(
                    ReferralWorkflow.add_note, AddNote(actor=COORDINATOR, text=f"note {i}")
                )
            elif i % 3 == 1:
                await handle.execute_update(
                    ReferralWorkflow.record_outreach,
                    RecordOutreach(
                        actor=COORDINATOR, channel=Channel.SMS, outcome=OutreachOutcome.REACHED
                    ),
                )
            else:
                await handle.signal(
                    ReferralWorkflow.ehr_changed, EhrEvent(resource=f"Appointment/a{i}")
                )
            if i % 10 == 9:
                await time_skipping.sleep(timedelta(days=6))  # 30 of them: 180 days
        detail = await ledger_written(handle)
        described = await handle.describe()
        histories = await case_runs(client, handle.id)

    # It continued as new, and no run's history outgrew the bound.
    assert len(histories) >= 2 and detail.run == len(histories)
    for history in histories:
        size = sum(event.ByteSize() for event in history.events)
        assert len(history.events) <= EVENTS_PER_RUN and size <= BYTES_PER_RUN
    assert sum(len(h.events) for h in histories) > EVENTS_PER_RUN  # one run would have outgrown it

    # The same case: owner, stage, deadline (10 business days from opening, 17:00 in New York),
    # and the queue entry the search attributes make.
    assert (detail.stage, detail.owner) == ("awaiting_scheduling", "cora")
    due = close_of_business(opened.opened_at, 10)
    assert detail.due_at == due and detail.opened_at == opened.opened_at
    attrs = described.typed_search_attributes
    assert attrs.get(search.STAGE) == "awaiting_scheduling" and attrs.get(search.OWNER) == "cora"
    assert attrs.get(search.DUE_AT) == due and attrs.get(search.STALLED) is True
    assert detail.counters["outreach_attempts"] == 100

    # The ladder climbed once over the six months, not again in each new run.
    trail = case_trail(engine, handle.id)
    kinds = [entry.kind for entry in trail]
    assert (kinds.count("reminded"), kinds.count("escalated")) == (1, 1)
    assert kinds.count("note") == 100 and kinds.count("outreach") == 100

    # One chain from the first entry to the last, anchored, across every run.
    assert [entry.seq for entry in trail] == list(range(1, detail.events + 1))
    report = check_case(engine, handle.id, detail, Anchor())
    assert report.intact and report.anchored and report.temporal_checked
    assert len(detail.timeline) == 50 and detail.timeline[-1].seq == detail.events

    # Every run replays on today's code.
    replayer = Replayer(workflows=[ReferralWorkflow], data_converter=pydantic_data_converter)
    for history in histories:
        assert (await replayer.replay_workflow(history)).replay_failure is None
    ended = [h.events[-1].event_type for h in histories[:-1]]
    assert set(ended) == {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW}
