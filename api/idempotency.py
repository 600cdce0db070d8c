"""Idempotency-Key on care-team actions: a request sent again (a flaky network, a retrying client)
acts once, and the retry hears the first answer. Kept in the app database, so any API replica
answers the retry, for a day."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from activities.ledger.tables import IdempotentRequest, as_stored

KEY_PATTERN = r"^[A-Za-z0-9_\-.:]{1,200}$"
KEPT_FOR = timedelta(hours=24)
# A request that has not answered in this long is taken to have died with its process.
ABANDONED_AFTER = timedelta(seconds=60)
PURGE_BATCH = 100
# Answers the case decided: the same request would hear them again. A 5xx is not kept, as a
# retry may then succeed.
DECIDED = frozenset({403, 409, 422})


class KeyReused(Exception):
    """The key already stands for another request (another case, action or body)."""


class KeyInFlight(Exception):
    """The key's first request has not answered yet."""


@dataclass(frozen=True)
class KeyedAction:
    """An action as its key names it: who sent it, under which key, and what it asked."""

    user_id: str
    key: str
    case_id: str
    action: str
    body_hash: str

    @property
    def update_id(self) -> str:
        """The case's own name for this request: the same keyed request is one update however
        often it reaches the case (say the API died before it could keep the answer)."""
        digest = hashlib.sha256(
            "\n".join((self.user_id, self.key, self.action, self.body_hash)).encode()
        ).hexdigest()
        return f"keyed-{digest[:40]}"

    @classmethod
    def of(
        cls, user_id: str, key: str, case_id: str, action: str, body: dict[str, Any]
    ) -> KeyedAction:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return cls(user_id, key, case_id, action, digest)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def keeps(status: int) -> bool:
    """Whether an answer is kept for the key's retries."""
    return 200 <= status < 300 or status in DECIDED


def claim(engine: Engine, request: KeyedAction, now: datetime | None = None) -> Answer | None:
    """Take the key for this request (None: go on and act), or hear the answer it already has.

    Raises KeyReused when the key stands for another request, KeyInFlight while its first request
    is still running. Of two requests racing with one key, the primary key lets one in."""
    now = now or datetime.now(UTC)
    _purge(engine, now)
    for _ in range(2):
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(IdempotentRequest).values(
                        user_id=request.user_id,
                        key=request.key,
                        case_id=request.case_id,
                        action=request.action,
                        body_hash=request.body_hash,
                        created_at=now,
                    )
                )
            return None
        except IntegrityError:
            pass
        if _take_over(engine, request, now):
            return None
        with Session(engine) as session:
            row = session.get(IdempotentRequest, (request.user_id, request.key))
        if row is not None:
            break
        # Released or purged between the insert and the read: try the insert again.
    else:
        raise KeyInFlight
    if (row.case_id, row.action, row.body_hash) != (
        request.case_id,
        request.action,
        request.body_hash,
    ):
        raise KeyReused
    if row.status is None or row.answer is None:
        raise KeyInFlight
    return Answer(row.status, row.answer)


def settle(engine: Engine, request: KeyedAction, answer: Answer) -> None:
    """Keep the answer the request got, for its retries."""
    with engine.begin() as connection:
        connection.execute(
            update(IdempotentRequest)
            .where(*_same_key(request))
            .values(status=answer.status, answer=answer.body)
        )


def release(engine: Engine, request: KeyedAction) -> None:
    """Give the key up (the request failed in a way a retry may not): a retry acts afresh."""
    with engine.begin() as connection:
        connection.execute(
            delete(IdempotentRequest).where(
                *_same_key(request), col(IdempotentRequest.status).is_(None)
            )
        )


def _take_over(engine: Engine, request: KeyedAction, now: datetime) -> bool:
    """Claim a key whose row has expired, or whose request was abandoned unanswered. Conditional
    on the row being so, so of two retries taking it over only one does."""
    expired = col(IdempotentRequest.created_at) < as_stored(now - KEPT_FOR)
    abandoned = col(IdempotentRequest.status).is_(None) & (
        col(IdempotentRequest.created_at) < as_stored(now - ABANDONED_AFTER)
    )
    with engine.begin() as connection:
        taken = connection.execute(
            update(IdempotentRequest)
            .where(*_same_key(request), or_(expired, abandoned))
            .values(
                case_id=request.case_id,
                action=request.action,
                body_hash=request.body_hash,
                status=None,
                answer=None,
                created_at=now,
            )
        )
        return taken.rowcount == 1


def _purge(engine: Engine, now: datetime) -> None:
    """Delete a bounded batch of expired rows: each new key pays for a little cleaning."""
    oldest = (
        select(col(IdempotentRequest.user_id), col(IdempotentRequest.key))
        .where(col(IdempotentRequest.created_at) < as_stored(now - KEPT_FOR))
        .limit(PURGE_BATCH)
    )
    with engine.begin() as connection:
        connection.execute(
            delete(IdempotentRequest).where(
                tuple_(col(IdempotentRequest.user_id), col(IdempotentRequest.key)).in_(oldest)
            )
        )


def _same_key(request: KeyedAction) -> tuple[Any, ...]:
    return (
        col(IdempotentRequest.user_id) == request.user_id,
        col(IdempotentRequest.key) == request.key,
    )
