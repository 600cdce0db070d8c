"""Idempotency-Key on actions: a request sent again acts once and hears the first answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update
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
def test_an_expired_or_abandoned_key_is_taken_afresh(engine, monkeypatch):
    # As when more rows expired than one purge takes: the expired row is still there.
    monkeypatch.setattr(idempotency, "PURGE_BATCH", 0)
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


# Through the API, against the case's workflow.


def test_the_same_note_sent_twice_with_a_key_is_added_once(http, cora, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    headers = {**cora, "Idempotency-Key": new_key()}
    first = http.post(url, json={"text": "Called the patient"}, headers=headers)
    again = http.post(url, json={"text": "Called the patient"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert notes(first.json()) == 1
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    case = http.get(url.rsplit("/actions", 1)[0], headers=cora).json()
    assert notes(case) == 1


def test_without_a_key_each_post_acts(http, cora, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    http.post(url, json={"text": "Called the patient"}, headers=cora)
    second = http.post(url, json={"text": "Called the patient"}, headers=cora)
    assert notes(second.json()) == 2


def test_a_key_used_for_another_request_is_refused(http, cora, sam, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    key = new_key()
    first = http.post(url, json={"text": "First"}, headers={**cora, "Idempotency-Key": key})
    assert first.status_code == 200
    other = http.post(url, json={"text": "Second"}, headers={**cora, "Idempotency-Key": key})
    assert other.status_code == 422
    assert "another request" in other.json()["detail"]
    # Another person's key of the same name is theirs: their note is added.
    theirs = http.post(url, json={"text": "First"}, headers={**sam, "Idempotency-Key": key})
    assert theirs.status_code == 200
    assert "idempotent-replayed" not in theirs.headers
    assert notes(theirs.json()) == 2


def test_a_malformed_key_is_invalid_input(http, cora, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    for key in ("has space", "x" * 201):
        response = http.post(url, json={"text": "Hi"}, headers={**cora, "Idempotency-Key": key})
        assert response.status_code == 422


def test_a_rejected_action_replays_its_rejection(http, cora, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/mark-completed"
    headers = {**cora, "Idempotency-Key": new_key()}
    body = {"report": "DiagnosticReport/r1"}
    first = http.post(url, json=body, headers=headers)
    again = http.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 409
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_a_key_older_than_a_day_may_name_another_request(http, stack, cora, open_case):
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    key = new_key()
    headers = {**cora, "Idempotency-Key": key}
    assert http.post(url, json={"text": "Called"}, headers=headers).status_code == 200
    age(stack.database_url, key, timedelta(hours=24, minutes=1))
    later = http.post(url, json={"text": "Called again"}, headers=headers)
    assert later.status_code == 200
    assert "idempotent-replayed" not in later.headers
    assert notes(later.json()) == 2


def test_a_keyed_action_whose_answer_was_lost_acts_once(http, stack, cora, open_case):
    """The API died after the case took the action and before it kept the answer: the row is
    gone (as a 5xx leaves it) and the retry reaches the case again, which knows the request."""
    url = f"/api/v1/cases/{open_case()['case_id']}/actions/add-note"
    key = new_key()
    headers = {**cora, "Idempotency-Key": key}
    assert http.post(url, json={"text": "Called"}, headers=headers).status_code == 200
    engine = make_engine(stack.database_url, migrate=False)
    with engine.begin() as connection:
        connection.execute(delete(IdempotentRequest).where(col(IdempotentRequest.key) == key))
    engine.dispose()
    retried = http.post(url, json={"text": "Called"}, headers=headers)
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers  # the API had forgotten; the case had not
    assert notes(retried.json()) == 1


def test_the_key_is_documented(http):
    paths = http.get("/openapi.json").json()["paths"]
    action = paths["/api/v1/cases/{case_id}/actions/{action}"]["post"]
    (header,) = [p for p in action["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and "24 hours" in header["description"]
