"""Temporal payloads are encrypted under a rotating keyring, and what was recorded before still reads."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from contextlib import suppress
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError
from temporalio.worker import Replayer

from tests.workflows.referral_kit import COORDINATOR, ledger_written, referral_input
from workers.client import data_converter
from workers.codec import KEY_ID, EncryptionCodec, Keyring, MissingKey
from workers.settings import Settings
from workers.worker import WorkerTuning, build_worker
from workflows.referral.models import AddNote, Cancel
from workflows.referral.workflow import ReferralWorkflow

OLD, NEW = "2025-q4", "2026-q1"
KEYS = {
    OLD: base64.b64encode(os.urandom(32)).decode(),
    NEW: base64.b64encode(os.urandom(32)).decode(),
}
HISTORIES = sorted(
    path
    for path in (Path(__file__).parents[1] / "workflows" / "histories").glob("referral-*.json")
    if ".ledger" not in path.suffixes
)

NO_CACHE = WorkerTuning(max_cached_workflows=0)  # every task replays from history


def settings(active: str, *key_ids: str) -> Settings:
    return Settings(payload_keys={k: KEYS[k] for k in key_ids}, payload_key_id=active)


def codec(active: str, *key_ids: str) -> EncryptionCodec:
    return EncryptionCodec(settings(active, *key_ids).keyring)


def json_payload(value: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


async def test_a_payload_is_unreadable_without_the_key_and_reads_back_with_it():
    note = "Spoke with the patient about the cardiology consult"
    [sealed] = await codec(OLD, OLD).encode([json_payload({"note": note})])
    [again] = await codec(OLD, OLD).encode([json_payload({"note": note})])

    assert sealed.metadata[KEY_ID] == OLD.encode()
    assert b"cardiology" not in sealed.data and b"cardiology" not in sealed.SerializeToString()
    assert sealed.data != again.data  # a fresh nonce for every payload
    [opened] = await codec(OLD, OLD).decode([sealed])
    assert json.loads(opened.data) == {"note": note}


async def test_a_large_payload_is_compressed_before_it_is_encrypted():
    timeline = [{"summary": "Outreach by phone: no answer", "seq": n} for n in range(300)]
    plain = json_payload(timeline)
    [sealed] = await codec(OLD, OLD).encode([plain])

    assert len(sealed.data) < len(plain.data) / 4
    [opened] = await codec(OLD, OLD).decode([sealed])
    assert opened == plain


async def test_a_payload_whose_key_is_gone_fails_naming_the_key():
    [sealed] = await codec(OLD, OLD).encode([json_payload({"reason": "moved away"})])

    with pytest.raises(MissingKey, match=OLD):
        await codec(NEW, NEW).decode([sealed])


async def test_a_payload_relabelled_with_another_key_does_not_decrypt():
    [sealed] = await codec(OLD, OLD, NEW).encode([json_payload({"reason": "moved away"})])
    sealed.metadata[KEY_ID] = NEW.encode()

    with pytest.raises(InvalidTag):
        await codec(NEW, OLD, NEW).decode([sealed])


async def test_payloads_written_before_encryption_pass_through():
    plain = json_payload({"case_id": "referral-1"})
    assert await codec(NEW, NEW).decode([plain]) == [plain]


def test_the_active_key_must_be_in_the_keyring_and_every_key_32_bytes():
    with pytest.raises(ValueError, match="not in the keyring"):
        Keyring.from_base64({OLD: KEYS[OLD]}, NEW)
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring.from_base64({OLD: base64.b64encode(b"short").decode()}, OLD)


def test_production_refuses_the_development_key_and_no_encryption():
    production = {
        "environment": "production",
        "jwt_secret": "x" * 40,
        "ledger_anchor_key": "y" * 40,
        "csrf_secret": "z" * 40,
    }
    with pytest.raises(ValueError, match="PAYLOAD_KEYS"):
        data_converter(Settings(**production))
    own_key = {"payload_keys": {NEW: KEYS[NEW]}, "payload_key_id": NEW}
    with pytest.raises(ValueError, match="PAYLOAD_ENCRYPTION"):
        data_converter(Settings(**production, payload_encryption=False, **own_key))
    assert data_converter(Settings(**production, **own_key))


def _with_keys(client: Client, active: str, *key_ids: str) -> Client:
    return Client(
        **{**client.config(), "data_converter": data_converter(settings(active, *key_ids))}
    )


def _key_ids(history: WorkflowHistory) -> list[tuple[str, str]]:
    """(event type, key id) of every payload the case's inputs and updates carry."""
    found = []
    for event in history.events:
        kind = EventType.Name(event.event_type)
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes
            payloads = accepted.accepted_request.input.args.payloads
        else:
            continue
        found += [(kind, p.metadata[KEY_ID].decode()) for p in payloads]
    return found


async def test_a_case_started_under_the_old_key_finishes_under_the_new_one(client, engine):
    order = referral_input(case_id=f"referral-rotate-{uuid.uuid4().hex[:8]}")
    before = _with_keys(client, OLD, OLD)
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    # No cache: every workflow task replays the case from its history, so each worker reads every
    # payload the case holds (and none waits on the other's sticky queue).
    async with build_worker(before, engine, task_queue=task_queue, tuning=NO_CACHE):
        handle = await before.start_workflow(
            ReferralWorkflow.run, order, id=order.case_id, task_queue=task_queue
        )
        await handle.execute_update(
            ReferralWorkflow.add_note, AddNote(actor=COORDINATOR, text="Left a voicemail")
        )
        await ledger_written(handle)  # no workflow task left in flight when this worker stops

    # The key rotates: the new one encrypts, the old one still decrypts what the case holds.
    after = _with_keys(client, NEW, OLD, NEW)
    async with build_worker(after, engine, task_queue=task_queue, tuning=NO_CACHE):
        handle = after.get_workflow_handle_for(ReferralWorkflow.run, order.case_id)
        try:
            async with asyncio.timeout(30):  # a worker that cannot read the case never ends it
                await handle.execute_update(
                    ReferralWorkflow.cancel, Cancel(actor=COORDINATOR, reason="Referred elsewhere")
                )
                outcome = await handle.result()
                detail = await handle.query(ReferralWorkflow.detail)
        finally:
            with suppress(RPCError):  # left running, it would hold back the tests after it
                await handle.terminate("test finished")

    assert outcome.stage == "cancelled"
    assert [e.details["text"] for e in detail.timeline if e.kind == "note"] == ["Left a voicemail"]
    history = await handle.fetch_history()
    assert _key_ids(history) == [
        ("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", OLD),
        ("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED", OLD),
        ("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED", NEW),
    ]
    # Once the old key is dropped from the keyring, that case's history no longer reads.
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    with pytest.raises(MissingKey, match=OLD):
        await codec(NEW, NEW).decode(started)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_histories_recorded_before_encryption_replay_with_it(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[ReferralWorkflow], data_converter=data_converter(settings(NEW, NEW))
    )

    result = await replayer.replay_workflow(history)

    assert result.replay_failure is None
