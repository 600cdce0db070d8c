"""The coordinator's pages: work queues, a case and its actions.

Every read and every action goes through api/cases.py, the same service layer as /api/v1.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from activities.ledger.anchor import Anchor
from api import audit, cases, patients
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.web import forms, queue, session
from api.web.render import page, stage_labels
from workflows import pathways
from workflows.care.models import Actor, CaseDetail, Role

router = APIRouter(include_in_schema=False)
CaseId = Annotated[str, Path(pattern=r"^[a-z]+-[A-Za-z0-9\-.]{1,64}$")]


def problem(request: Request, actor: Actor | None, err: HTTPException) -> HTMLResponse:
    return page(
        request,
        "error.html",
        {"status": err.status_code, "message": forms.error_text(err.detail)},
        actor=actor,
        status_code=err.status_code,
    )


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/queue", status.HTTP_303_SEE_OTHER)


async def _queue_context(
    request: Request, client: TemporalDep, actor: Actor, settings: SettingsDep
) -> dict:
    view = queue.QueueView.for_actor(actor, **dict(request.query_params))
    items = await queue.fetch(client, actor, view, settings)
    labels = await queue.patient_labels(request, actor, items)
    return {
        "view": view,
        "items": items,
        "stages": stage_labels(),
        "case_types": {p.case_type: p.title for p in pathways.PATHWAYS},
        "labels": labels,
    }


@router.get("/queue")
async def queue_page(
    request: Request, client: TemporalDep, actor: session.PageUser, settings: SettingsDep
) -> HTMLResponse:
    try:
        context = await _queue_context(request, client, actor, settings)
    except HTTPException as err:
        return problem(request, actor, err)
    return page(request, "queue.html", context, actor=actor)


@router.get("/queue/rows")
async def queue_rows(
    request: Request, client: TemporalDep, actor: session.PageUser, settings: SettingsDep
) -> HTMLResponse:
    """The queue's results alone: htmx polls this so the list follows the cases."""
    try:
        context = await _queue_context(request, client, actor, settings)
    except HTTPException as err:
        return problem(request, actor, err)
    return page(request, "_queue_results.html", context, actor=actor)


def _case_context(
    case: CaseDetail, actor: Actor, patient: patients.PatientCard | None = None, **extra: object
) -> dict:
    return {
        "case": case,
        "patient": patient,
        "forms": forms.offered(case, actor),
        "errors": {},
        "values": {},
        "flash": None,
        # The audit ledger's verify-chain result, for auditors; None hides it.
        "chain": None,
        **extra,
    }


@router.get("/cases/{case_id}")
async def case_page(
    request: Request,
    case_id: CaseId,
    client: TemporalDep,
    engine: EngineDep,
    actor: session.PageUser,
) -> HTMLResponse:
    structlog.contextvars.bind_contextvars(case_id=case_id)
    try:
        case = await cases.read_case(client, case_id, actor)
    except HTTPException as err:
        return problem(request, actor, err)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    audit.record_access(engine, actor, case_id, "detail", request_id)
    patient = await _patient(request, engine, actor, case)
    chain = None
    if actor.role in (Role.AUDITOR, Role.ADMIN):
        anchor = Anchor(request.app.state.settings.ledger_anchor_key)
        chain = audit.check_case(engine, case_id, case, anchor)
        audit.record_access(engine, actor, case_id, "verify", request_id)
    case.timeline[:0] = audit.earlier_events(engine, case)
    return page(request, "case.html", _case_context(case, actor, patient, chain=chain), actor=actor)


async def _patient(
    request: Request, engine: EngineDep, actor: Actor, case: CaseDetail
) -> patients.PatientCard:
    """The patient, read from the EHR for this page (and logged as read), or unavailable."""
    ehr = await patients.patient_ehr(request)
    card = await patients.read_patient(ehr, actor, case.order.patient)
    if card.available:
        patients.record_reads(engine, actor, [case.case_id], "patient")
    return card


@router.post("/cases/{case_id}/actions/{key}", dependencies=[session.CsrfChecked])
async def case_action(
    request: Request,
    case_id: CaseId,
    key: str,
    client: TemporalDep,
    actor: session.PageUser,
    settings: SettingsDep,
    engine: EngineDep,
) -> Response:
    """Send one action. On success the case is shown as it now is; on rejection the form comes
    back with the case's reason beside it and everything that was typed still in place."""
    structlog.contextvars.bind_contextvars(case_id=case_id, action=key)
    spec = forms.find(case_id, key)
    if spec is None:
        return problem(request, actor, HTTPException(404, f"Unknown action {key!r}"))
    submitted = await request.form()
    values = {f.name: str(submitted.get(f.name, "")) for f in spec.fields}
    htmx = request.headers.get("hx-request") == "true"
    try:
        case = await cases.act(
            client, case_id, spec.action, forms.action_body(spec, values, settings), actor
        )
    except HTTPException as rejected:
        try:
            case = await cases.read_case(client, case_id, actor)
        except HTTPException as err:
            return problem(request, actor, err)
        context = _case_context(
            case,
            actor,
            errors={key: forms.error_text(rejected.detail)},
            values={key: values},
            form=spec,
        )
        if not htmx:
            context["patient"] = await _patient(request, engine, actor, case)
            return page(
                request, "case.html", context, actor=actor, status_code=rejected.status_code
            )
        # Swap only the rejected form, so whatever is typed in the other forms stays as it is.
        response = page(
            request, "_action_form.html", context, actor=actor, status_code=rejected.status_code
        )
        response.headers["hx-retarget"] = f"#action-{key}"
        response.headers["hx-reswap"] = "outerHTML"
        return response
    if not htmx:
        return RedirectResponse(f"/cases/{case_id}", status.HTTP_303_SEE_OTHER)
    patient = await _patient(request, engine, actor, case)
    context = _case_context(case, actor, patient, flash=f"Recorded: {spec.title.lower()}")
    return page(request, "_case_body.html", context, actor=actor)
