"""Work queues: the cases a person sees, from Temporal visibility (search attributes only, never
a query per case), filtered and paged; coordinators and supervisors see their team's."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime

from fastapi import HTTPException, status
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus

from workflows.care import search
from workflows.care.models import Actor, Role

SAFE_VALUE = re.compile(r"^[A-Za-z0-9_\-.:/@ ]{1,128}$")
MAC_BYTES = 16


class QueueItem(BaseModel):
    case_id: str
    case_type: str | None
    stage: str | None
    team: str | None
    owner: str | None
    priority: str | None
    location: str | None
    due_at: datetime | None
    stalled: bool
    opened_at: datetime
    closed: bool


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_page_token: str | None


class QueueFilter(BaseModel):
    team: str | None = None
    owner: str | None = None
    unowned: bool | None = None
    stage: str | None = None
    stalled: bool | None = None
    due_before: datetime | None = None
    case_type: str | None = None
    priority: str | None = None
    location: str | None = None
    include_closed: bool = False

    def query(self) -> str:
        """The Temporal visibility query. Values are checked, then quoted: never spliced raw."""
        clauses = [] if self.include_closed else ["ExecutionStatus = 'Running'"]
        keywords = {
            search.OWNER_TEAM: self.team,
            search.OWNER: self.owner,
            search.STAGE: self.stage,
            search.CASE_TYPE: self.case_type,
            search.PRIORITY: self.priority,
            search.LOCATION: self.location,
        }
        for key, value in keywords.items():
            if value is not None:
                if not SAFE_VALUE.match(value):
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        f"{key.name} filter has characters it cannot contain",
                    )
                clauses.append(f"{key.name} = '{value}'")
        if self.unowned is not None:
            clauses.append(f"{search.OWNER.name} IS {'NULL' if self.unowned else 'NOT NULL'}")
        if self.stalled is not None:
            clauses.append(f"{search.STALLED.name} = {'true' if self.stalled else 'false'}")
        if self.due_before is not None:
            clauses.append(f"{search.DUE_AT.name} < '{self.due_before.isoformat()}'")
        clauses.append(f"{search.CASE_TYPE.name} IS NOT NULL")
        return " AND ".join(clauses)


def seal(key: bytes, query: str, token: bytes) -> str:
    """Temporal's next-page token as the caller gets it: tied to the query it pages and signed,
    so a token made up or carried to other filters is refused here, not by Temporal (which
    answers a bad one only after retrying for seconds)."""
    return base64.urlsafe_b64encode(_mac(key, query, token) + token).decode()


def unseal(key: bytes, query: str, sealed: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(sealed)
    except (binascii.Error, ValueError):
        raw = b""
    mac, token = raw[:MAC_BYTES], raw[MAC_BYTES:]
    if not token or not hmac.compare_digest(mac, _mac(key, query, token)):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Invalid page_token: send the next_page_token of the page before, with the same "
            "filters, or none for the first page",
        )
    return token


def _mac(key: bytes, query: str, token: bytes) -> bytes:
    message = b"work-queue-page\0" + query.encode() + b"\0" + token
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


async def work_queue(
    client: Client,
    actor: Actor,
    filters: QueueFilter,
    page_size: int,
    page_token: str | None,
    key: bytes = b"",
) -> QueuePage:
    if actor.role in (Role.COORDINATOR, Role.SUPERVISOR):
        if filters.team not in (None, actor.team):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"You can see the queue of team {actor.team} only"
            )
        filters = filters.model_copy(update={"team": actor.team})
    query = filters.query()
    token = unseal(key, query, page_token) if page_token else None
    executions = client.list_workflows(query, page_size=page_size, next_page_token=token)
    await executions.fetch_next_page()
    items = []
    for execution in executions.current_page or []:
        attrs = execution.typed_search_attributes
        items.append(
            QueueItem(
                case_id=execution.id,
                case_type=attrs.get(search.CASE_TYPE),
                stage=attrs.get(search.STAGE),
                team=attrs.get(search.OWNER_TEAM),
                owner=attrs.get(search.OWNER),
                priority=attrs.get(search.PRIORITY),
                location=attrs.get(search.LOCATION),
                due_at=attrs.get(search.DUE_AT),
                stalled=bool(attrs.get(search.STALLED)),
                opened_at=execution.start_time,
                closed=execution.status != WorkflowExecutionStatus.RUNNING,
            )
        )
    next_token = executions.next_page_token
    return QueuePage(
        items=items,
        next_page_token=seal(key, query, next_token) if next_token else None,
    )
