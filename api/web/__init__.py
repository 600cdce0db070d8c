"""The care-team web UI: server-rendered pages and htmx over the same service layer as /api/v1."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.middleware import PageHeaders
from api.web import pages, session, signin, supervisor
from api.web.render import HERE


def mount(app: FastAPI) -> None:
    """Serve the UI under `/` beside the API."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(supervisor.router)
    app.add_middleware(PageHeaders)

    @app.exception_handler(session.SignInRequired)
    async def sign_in_first(request: Request, exc: session.SignInRequired) -> Response:
        if request.headers.get("hx-request") == "true":
            # A fragment request cannot follow a redirect into a full page; htmx can.
            return Response(status_code=401, headers={"HX-Redirect": "/signin"})
        return RedirectResponse("/signin", status_code=303)
