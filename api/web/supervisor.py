"""The supervisor's pages: the team's queue with unowned and stalled cases first, bulk
reassignment, and the team dashboard."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from api import cases
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.web import dashboard, forms, queue, session
from api.web.pages import problem
from api.web.render import page
from workflows.care.models import Actor, Role

router = APIRouter(include_in_schema=False)
SUPERVISORS = (Role.SUPERVISOR, Role.ADMIN)


def _require_supervisor(actor: Actor) -> None:
    if actor.role not in SUPERVISORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This page is for team supervisors")


async def _supervisor_context(client: TemporalDep, actor: Actor, settings: SettingsDep) -> dict:
    view = queue.QueueView(view="team" if actor.role == Role.SUPERVISOR else "all")
    items = await queue.fetch(client, actor, view, settings)
    items.sort(key=queue.by_attention)
    owners = sorted({i.owner for i in items if i.owner} | {actor.user_id})
    return {
        "items": items,
        "owners": owners,
        "unowned": sum(i.owner is None for i in items),
        "stalled": sum(i.stalled for i in items),
        "results": [],
    }


@router.get("/supervisor")
async def supervisor_page(
    request: Request, client: TemporalDep, actor: session.PageUser, settings: SettingsDep
) -> HTMLResponse:
    try:
        _require_supervisor(actor)
        context = await _supervisor_context(client, actor, settings)
    except HTTPException as err:
        return problem(request, actor, err)
    return page(request, "supervisor.html", context, actor=actor)


@router.post("/supervisor/reassign", dependencies=[session.CsrfChecked])
async def bulk_reassign(
    request: Request, client: TemporalDep, actor: session.PageUser, settings: SettingsDep
) -> HTMLResponse:
    """Assign each selected case to one person; every case answers for itself."""
    form = await request.form()
    owner = str(form.get("owner", "")).strip()
    case_ids = [str(c) for c in form.getlist("case_id")]
    results: list[tuple[str, bool, str]] = []
    try:
        _require_supervisor(actor)
        if not owner or not case_ids:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "Choose at least one case and a new owner"
            )
        for case_id in case_ids:
            try:
                await cases.act(client, case_id, "assign", {"owner": owner}, actor)
                results.append((case_id, True, f"assigned to {owner}"))
            except HTTPException as err:
                results.append((case_id, False, forms.error_text(err.detail)))
        context = await _supervisor_context(client, actor, settings)
    except HTTPException as err:
        return problem(request, actor, err)
    context["results"] = results
    return page(request, "supervisor.html", context, actor=actor)


@router.get("/dashboard")
def dashboard_page(request: Request, engine: EngineDep, actor: session.PageUser) -> HTMLResponse:
    try:
        _require_supervisor(actor)
        figures = dashboard.team_figures(engine, actor)
        team = dashboard.team_metrics(engine, actor)
    except HTTPException as err:
        return problem(request, actor, err)
    # Label/count pairs, not dicts: the JSON filter sorts keys, and buckets must keep their order.
    charts = {
        key: [[label.replace("_", " "), count] for label, count in series.items()]
        for key, series in (
            ("outcomes", figures.outcomes),
            ("schedule", figures.time_to_schedule),
            ("aging", figures.aging),
            ("rework", figures.rework),
        )
    }
    return page(
        request,
        "dashboard.html",
        {
            "figures": figures,
            "charts": charts,
            "authorizations": team.authorizations if team else None,
            "outreach": team.outreach if team else None,
            "readable_days": dashboard.readable_days,
        },
        actor=actor,
    )
