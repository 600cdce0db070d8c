"""Work queues for people: which cases, in what order, filtered how.

Temporal's SQL visibility cannot ORDER BY, so each fetched page is sorted here by urgency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request, status
from temporalio.client import Client

from api import patients, work_queue
from workers.settings import Settings
from workflows.care.models import Actor, Role

PAGE_SIZE = 200  # one visibility page; teams with more open cases page with the API
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass
class QueueView:
    """What the queue page was asked for, as typed values (the query string's strings, checked)."""

    view: str = "team"  # mine, team, all
    stage: str = ""
    owner: str = ""
    case_type: str = ""
    stalled: bool = False
    due_before: str = ""
    q: str = ""

    @classmethod
    def for_actor(cls, actor: Actor, **params: str) -> QueueView:
        view = params.get("view") or ("all" if actor.role == Role.AUDITOR else "mine")
        if actor.role == Role.AUDITOR or view not in ("mine", "team", "all"):
            view = "all" if actor.role in (Role.AUDITOR, Role.ADMIN) else "team"
        return cls(
            view=view,
            stage=params.get("stage", "").strip(),
            owner=params.get("owner", "").strip(),
            case_type=params.get("case_type", "").strip(),
            stalled=params.get("stalled", "") in ("1", "true", "on"),
            due_before=params.get("due_before", "").strip(),
            q=params.get("q", "").strip().lower(),
        )

    @property
    def title(self) -> str:
        return {"mine": "My work", "team": "Team queue", "all": "All cases"}[self.view]

    def filters(self, actor: Actor, settings: Settings) -> work_queue.QueueFilter:
        due_before = None
        if self.due_before:
            try:
                day = date.fromisoformat(self.due_before)
            except ValueError:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, "Due before needs a date"
                ) from None
            # "Due before the 5th" includes the whole 5th in the clinic's time zone.
            due_before = datetime.combine(day, time.max, ZoneInfo(settings.clinic_timezone))
        owner = actor.user_id if self.view == "mine" else (self.owner or None)
        return work_queue.QueueFilter(
            owner=owner,
            stage=self.stage or None,
            case_type=self.case_type or None,
            stalled=True if self.stalled else None,
            due_before=due_before,
        )

    def query_string(self) -> str:
        params = {
            "view": self.view,
            "stage": self.stage,
            "owner": self.owner,
            "case_type": self.case_type,
            "stalled": "1" if self.stalled else "",
            "due_before": self.due_before,
            "q": self.q,
        }
        return urlencode({k: v for k, v in params.items() if v})


def by_urgency(item: work_queue.QueueItem) -> tuple:
    """Overdue first (most overdue first), then due soonest; cases without a deadline last."""
    return (item.due_at is None, item.due_at or FAR_FUTURE, item.opened_at)


def by_attention(item: work_queue.QueueItem) -> tuple:
    """A supervisor's order: nobody owns it, then stuck, then by urgency."""
    return (item.owner is not None, not item.stalled, *by_urgency(item))


async def fetch(
    client: Client, actor: Actor, view: QueueView, settings: Settings
) -> list[work_queue.QueueItem]:
    page = await work_queue.work_queue(
        client, actor, view.filters(actor, settings), PAGE_SIZE, None
    )
    items = [i for i in page.items if not view.q or view.q in i.case_id.lower()]
    return sorted(items, key=by_urgency)


async def patient_labels(
    request: Request, actor: Actor, items: list[work_queue.QueueItem]
) -> dict[str, patients.RowLabel]:
    """The patient's name and the service ordered for the rows of the person's own team, read
    from the EHR (briefly kept in memory); rows of other teams, and other roles, get none."""
    if actor.role not in patients.QUEUE_ROLES:
        return {}
    orders = {
        item.case_id: item.case_id.split("-", 1)[1]  # "<pathway prefix>-<order id>"
        for item in items
        if item.team == actor.team and item.case_type and not item.closed
    }
    if not orders:
        return {}
    labels = await patients.queue_labels(request)
    ehr = await patients.patient_ehr(request)
    return await labels.for_rows(ehr, request.app.state.engine, actor, orders)
