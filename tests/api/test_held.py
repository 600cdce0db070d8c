"""A case whose workflow task keeps failing is held: the API says so (503, and why when it is
the ledger), for opening it again, acting on it and reading it, never a 500.

Found by the chaos run: a worker killed after its ledger write and before its workflow task
completed left the case's first entry stored with the time of the lost attempt, so the retried
task wrote another, the ledger refused it, and the case held. Here the refusal is made the same
way, with an entry already stored under the case's first number."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import UTC, datetime

import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from activities.ledger.tables import LedgerRow
from tests.api.conftest import new_order
from workers.database import make_engine


def store_foreign_first_entry(database_url: str, case_id: str) -> None:
    engine = make_engine(database_url, migrate=False)
    with engine.begin() as connection:
        connection.execute(
            LedgerRow.__table__.insert().values(
                case_id=case_id,
                seq=1,
                at=datetime(2026, 1, 1, tzinfo=UTC),
                kind="opened",
                actor="system",
                role="system",
                summary="stored by a workflow task that never completed",
                details={},
                evidence=[],
                case_type="referral",
                team="cardiology",
                pathway="referral",
                pathway_version="test",
                prev_hash="0" * 64,
                hash="f" * 64,
                hash_scheme=2,
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    engine.dispose()


def test_a_held_case_answers_503_with_why(http: httpx.Client, stack, admin, temporal_address):
    order = new_order()
    case_id = f"referral-{order['id']}"
    store_foreign_first_entry(stack.database_url, case_id)
    try:
        # The case opens; its first entry is stored once the task that opened it has completed,
        # and that is when the ledger refuses it.
        opened = http.post("/api/v1/referrals", json=order, headers=admin)
        assert opened.status_code == 201, opened.text
        assert opened.json()["ledger_pending"] == 1
        deadline = time.monotonic() + 30
        while True:  # the held reason shows once the task has failed more than once
            read = http.get(f"/api/v1/cases/{case_id}", headers=admin)
            assert read.status_code in (200, 503), read.text
            if read.status_code == 503 and "held" in read.json()["detail"]:
                break
            assert time.monotonic() < deadline, read.text
            time.sleep(0.5)
        assert "Ledger entry 1" in read.json()["detail"]
        again = http.post("/api/v1/referrals", json=order, headers=admin)
        assert again.status_code == 503 and "held" in again.json()["detail"], again.text
        acted = http.post(
            f"/api/v1/cases/{case_id}/actions/add-note", json={"text": "Hi"}, headers=admin
        )
        assert acted.status_code == 503 and "held" in acted.json()["detail"], acted.text
    finally:
        asyncio.run(terminate(temporal_address, case_id))


async def terminate(address: str, case_id: str) -> None:
    """Left running, the held case would keep failing its task for the tests after this one."""
    client = await Client.connect(address)
    with suppress(RPCError):
        await client.get_workflow_handle(case_id).terminate("test finished")
