"""Templates and the small formatting rules every page shares (times in the clinic's zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.web import session
from workers.settings import Settings
from workflows import pathways
from workflows.care.models import Actor, Role
from workflows.pathways import stage_labels

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def stage_label(stage: str | None) -> str:
    return stage_labels().get(stage or "", (stage or "—").replace("_", " ").capitalize())


def case_type_label(case_type: str | None) -> str:
    pathway = pathways.BY_TYPE.get(case_type or "")
    return pathway.title if pathway else (case_type or "").replace("_", " ").capitalize()


def local_time(value: datetime | None, settings: Settings, fmt: str = "%b %d, %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(settings.clinic_timezone)).strftime(fmt)


def due_in(value: datetime | None, now: datetime | None = None) -> str:
    """'in 3 days', 'in 5 h', '2 days overdue': how a coordinator reads a deadline at a glance."""
    if value is None:
        return ""
    seconds = (value - (now or datetime.now(UTC))).total_seconds()
    hours = abs(seconds) / 3600
    amount = f"{round(hours)} h" if hours < 36 else f"{round(hours / 24)} days"
    return f"{amount} overdue" if seconds < 0 else f"in {amount}"


def readable(value: str, settings: Settings) -> str:
    """A timeline detail as a person reads it: ISO timestamps in clinic time, the rest as is."""
    if len(value) >= 16 and value[4:5] == "-" and "T" in value:
        try:
            return local_time(datetime.fromisoformat(value), settings, "%b %d %Y, %H:%M")
        except ValueError:
            pass
    if "_" in value and value.replace("_", "").isalpha() and value.islower():
        return value.replace("_", " ").capitalize()  # enum codes such as left_message
    return value


def is_overdue(value: datetime | None) -> bool:
    return value is not None and value < datetime.now(UTC)


def nav_for(actor: Actor) -> list[tuple[str, str]]:
    """The navigation a role sees: supervisors get their team views, auditors only read."""
    items = [("/queue?view=mine", "My work"), ("/queue?view=team", "Team queue")]
    if actor.role == Role.AUDITOR:
        items = [("/queue?view=all", "All cases")]
    if actor.role in (Role.SUPERVISOR, Role.ADMIN):
        items += [("/supervisor", "Supervisor"), ("/dashboard", "Dashboard")]
    return items


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    actor: Actor | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page or fragment with what every template needs, and keep the CSRF cookie set."""
    settings: Settings = request.app.state.settings
    full = {
        "actor": actor,
        "nav": nav_for(actor) if actor else [],
        "csrf": session.csrf_token(request, settings),
        "csrf_field": session.CSRF_FIELD,
        "settings": settings,
        "stage_label": stage_label,
        "case_type_label": case_type_label,
        "local_time": lambda value, fmt="%b %d, %H:%M": local_time(value, settings, fmt),
        "due_in": due_in,
        "readable": lambda value: readable(value, settings),
        "is_overdue": is_overdue,
        "path": request.url.path,
        "now": datetime.now(UTC),
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    session.remember_csrf(request, response, settings)
    return response
