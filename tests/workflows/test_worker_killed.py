"""A worker killed while a deadline timer is pending, restarted after the deadline passed: the
escalation happens once, not never and not twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.ledger.tables import LedgerRow
from activities.staff import StaffNoticeRecord
from workers import dev
from workflows.care.calendar import BusinessCalendar
from workflows.referral.models import Priority

from .referral_kit import ledger_written, open_referral, referral_input


async def start(address: str, task_queue: str, database_url: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.workflows.worker_process"]
    process = dev._spawn([*command, address, task_queue, database_url], log)
    for _ in range(300):
        if log.exists() and b"worker ready" in log.read_bytes():
            return process
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not start: " + log.read_text()[-2000:])


def escalations(engine, case_id: str) -> tuple[int, int]:
    with Session(engine) as session:
        entries = session.exec(
            select(LedgerRow).where(LedgerRow.case_id == case_id, LedgerRow.kind == "escalated")
        ).all()
        notices = session.exec(
            select(StaffNoticeRecord).where(
                StaffNoticeRecord.case_id == case_id, StaffNoticeRecord.kind == "escalated"
            )
        ).all()
    return len(entries), len(notices)


async def test_escalation_fires_once_across_a_killed_worker(temporal_address, engine, tmp_path):
    """On a real dev server, in real time: a stat order's claim deadline is close of business
    today, and this clinic closes a few seconds from now."""
    now = datetime.now(UTC)
    closes = now + timedelta(seconds=8)
    if now.weekday() >= 5 or closes.date() != now.date():
        pytest.skip("needs a weekday with 8 seconds of it left (UTC)")
    order = referral_input(Priority.STAT).model_copy(
        update={"calendar": BusinessCalendar(timezone="UTC", closes_at=closes.time())}
    )
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    task_queue = f"killed-{uuid.uuid4().hex[:8]}"
    database_url = str(engine.url)
    first = await start(temporal_address, task_queue, database_url, tmp_path / "worker-1.log")
    second = None
    try:
        handle = await open_referral(client, task_queue, order)
        detail = await ledger_written(handle)  # opened, unowned: the claim deadline's timer waits
        assert detail.due_at == datetime.combine(now.date(), closes.time(), UTC)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        await asyncio.sleep((closes - datetime.now(UTC)).total_seconds() + 2)
        assert escalations(engine, handle.id) == (0, 0)  # passed, with nobody to act on it

        second = await start(temporal_address, task_queue, database_url, tmp_path / "worker-2.log")
        for _ in range(300):
            if escalations(engine, handle.id) != (0, 0):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # time for a second one to show, were there one
        detail = await ledger_written(handle)
        assert escalations(engine, handle.id) == (1, 1)
        assert detail.stalled
        await handle.terminate("test finished")
    finally:
        dev.stop(*(p for p in (first, second) if p))
