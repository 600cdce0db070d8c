"""The care-team web UI: server-rendered pages and htmx over the same service layer as /api/v1."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.web import pages, session, supervisor
from api.web.render import HERE

# Everything the pages load ships with the project (make web copies the npm packages), so the
# policy can forbid every other origin and all inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def mount(app: FastAPI) -> None:
    """Serve the UI under `/` beside the API."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(supervisor.router)

    @app.exception_handler(session.SignInRequired)
    async def sign_in_first(request: Request, exc: session.SignInRequired) -> Response:
        if request.headers.get("hx-request") == "true":
            # A fragment request cannot follow a redirect into a full page; htmx can.
            return Response(status_code=401, headers={"HX-Redirect": "/signin"})
        return RedirectResponse("/signin", status_code=303)

    @app.middleware("http")
    async def page_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response = await call_next(request)
        if not request.url.path.startswith(("/api/", "/docs", "/openapi.json", "/redoc")):
            response.headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
            response.headers.setdefault("x-content-type-options", "nosniff")
            response.headers.setdefault("referrer-policy", "same-origin")
        return response
