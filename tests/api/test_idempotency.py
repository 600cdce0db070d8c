"""Idempotency-Key on actions: a request sent again acts once and hears the first answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from activities.ledger.tables import IdempotentRequest, as_stored
from api import idempotency
from api.idempotency import Answer, KeyedAction, KeyInFlight, KeyReused
from tests.postgres import on_both_databases
from workers.database import make_engine

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def keyed(key: str = "k-1", user: str = "cora", text: str = "Called twice") -> KeyedAction:
    return KeyedAction.of(user, key, "referral-r1", "add-note", {"text": text})


def notes(case: dict) -> int:
    return sum(event["kind"] == "note" for event in case["timeline"])


def new_key() -> str:
    return f"note:{uuid.uuid4().hex}"


def age(database_url: str, key: str, by: timedelta) -> None:
    """Sets a key's row back in time, as if it was stored that long ago."""
    engine = make_engine(database_url, migrate=False)
    with engine.begin() as connection:
        connection.execute(
            update(IdempotentRequest)
            .where(col(IdempotentRequest.key) == key)
            .values(created_at=as_stored(datetime.now(UTC) - by))
        )
    engine.dispose()


# The store, on SQLite and PostgreSQL.


@on_both_databases
def test_a_key_is_claimed_once_and_then_answers_what_was_kept(engine):
    request = keyed()
    assert idempotency.claim(engine, request, NOW) is None
    with pytest.raises(KeyInFlight):
        idempotency.claim(engine, request, NOW + timedelta(seconds=5))
    idempotency.settle(engine, request, Answer(200, {"stage": "unassigned"}))
    assert idempotency.claim(engine, request, NOW + timedelta(hours=23)) == Answer(
        200, {"stage": "unassigned"}
    )


@on_both_databases
def test_a_key_names_one_request_of_one_user(engine):
    request = keyed()
    assert idempotency.claim(engine, request, NOW) is None
    idempotency.settle(engine, request, Answer(409, {"detail": "closed"}))
    with pytest.raises(KeyReused):
        idempotency.claim(engine, keyed(text="Something else"), NOW)
    other_case = KeyedAction.of("cora", "k-1", "referral-r2", "add-note", {"text": "Called twice"})
    with pytest.raises(KeyReused):
        idempotency.claim(engine, other_case, NOW)
    assert idempotency.claim(engine, keyed(user="sam"), NOW) is None


@on_both_databases
def test_an_expired_or_abandoned_key_is_taken_afresh(engine):
    request = keyed()
    assert idempotency.claim(engine, request, NOW) is None
    # Its request died before answering: after a minute a retry acts again.
    assert idempotency.claim(engine, request, NOW + timedelta(seconds=61)) is None
    idempotency.settle(engine, request, Answer(200, {"stage": "unassigned"}))
    # A day on, the key is free again, even for another request.
    later = NOW + timedelta(hours=24, seconds=62)
    assert idempotency.claim(engine, keyed(text="Another day"), later) is None


@on_both_databases
def test_a_released_key_acts_again_and_expired_rows_are_purged(engine):
    request = keyed()
    assert idempotency.claim(engine, request, NOW) is None
    idempotency.release(engine, request)
    assert idempotency.claim(engine, request, NOW) is None
    idempotency.settle(engine, request, Answer(200, {}))
    for n in range(3):
        idempotency.claim(engine, keyed(key=f"old-{n}"), NOW)
    idempotency.claim(engine, keyed(key="fresh"), NOW + timedelta(hours=25))
    with Session(engine) as session:
        keys = set(session.exec(select(IdempotentRequest.key)).all())
    assert keys == {"fresh"}
