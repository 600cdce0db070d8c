"""Every recorded referral history still replays on today's code (no non-determinism)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.referral.workflow import ReferralWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("referral-*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[ReferralWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


def test_there_are_recorded_histories():
    assert HISTORIES, "record one with python -m tests.workflows.record_histories"
