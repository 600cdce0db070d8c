"""Who may call what: every route of the API and the web UI, for every kind of caller, in one
table. A route missing from the table fails the suite, so no route ships without its row."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
import jwt
import pytest
from fastapi.routing import iter_route_contexts
from sqlmodel import Session

from activities.triggers import TriggerState
from api.auth import mint_token
from api.main import create_app
from tests.conftest import eventually
from workers.database import make_engine
from workflows.care.models import Role

from .conftest import Stack, new_order


class Redirect(NamedTuple):
    location: str
    status: int = 303


SIGN_IN = Redirect("/signin")  # a page asked for without a valid session
TO_QUEUE = Redirect("/queue")
TO_CASE = Redirect("/cases/{case_id}")  # a form that worked: back to the case as it now is

# The people: (user, role, team). The cases in the table are team cardiology's.
PEOPLE = {
    "coordinator": ("cora", Role.COORDINATOR, "cardiology"),
    "coordinator_elsewhere": ("ian", Role.COORDINATOR, "imaging"),
    "supervisor": ("sam", Role.SUPERVISOR, "cardiology"),
    "supervisor_elsewhere": ("ivy", Role.SUPERVISOR, "imaging"),
    "auditor": ("audrey", Role.AUDITOR, None),
    "admin": ("root", Role.ADMIN, None),
}
# Callers without a valid credential. Each carries an admin's claims, so that a refusal is the
# token's doing and not the role's.
NO_VALID_TOKEN = ("no_token", "expired", "wrong_issuer", "hs384", "alg_none")

NOWHERE = "referral-t-nowhere00000"  # a case id no case has

# One row per route (method, path as the app declares it), plus rows naming a case nobody has
# ({nowhere}) and a route that must stay gone. Columns: the six people, then what each of the
# five callers without a valid token gets (none, expired, wrong issuer, HS384, alg none).
# Path parameters: {case_id} a cardiology case, {action} and {key} add-note, {operation} decode.
# A caller bound to one team hears the same of another team's case and of a case nobody has
# (403, same words), so the answer never tells whether a case exists; auditors and admins, who
# see every case, get 404 for one that does not exist.
# fmt: off
MATRIX: list[tuple[str, str, Any, Any, Any, Any, Any, Any, Any]] = [
    # method   path                                          coord coord' sup  sup' audit admin no-valid-token
    ("GET",    "/healthz",                                   200,  200,  200, 200, 200,  200,  200),
    # Opening cases: for one's own team; the order routes to cardiology.
    ("POST",   "/api/v1/referrals",                          201,  403,  201, 403, 403,  201,  401),
    ("POST",   "/api/v1/cases",                              201,  403,  201, 403, 403,  201,  401),
    # The queue: team-scoped callers get their own team's.
    ("GET",    "/api/v1/cases",                              200,  200,  200, 200, 200,  200,  401),
    ("GET",    "/api/v1/cases/{case_id}",                    200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}",                    403,  403,  403, 403, 404,  404,  401),
    ("POST",   "/api/v1/cases/{case_id}/actions/{action}",   200,  403,  200, 403, 403,  200,  401),
    # Auditors never act: refused for their role before the case is looked up.
    ("POST",   "/api/v1/cases/{nowhere}/actions/{action}",   403,  403,  403, 403, 403,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/history",            200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/history",            403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/patient",            200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/patient",            403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/audit",              200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/audit",              403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/audit/verify",       200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/audit/verify",       403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/proof",              200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/proof",              403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/cases/{case_id}/messages",           200,  403,  200, 403, 200,  200,  401),
    ("GET",    "/api/v1/cases/{nowhere}/messages",           403,  403,  403, 403, 404,  404,  401),
    ("GET",    "/api/v1/pathways",                           200,  200,  200, 200, 200,  200,  401),
    # Everyone's own inbox: addressed to them, or to their role in their team.
    ("GET",    "/api/v1/notifications",                      200,  200,  200, 200, 200,  200,  401),
    # The ledger across cases: auditors and admins.
    ("GET",    "/api/v1/audit/events",                       403,  403,  403, 403, 200,  200,  401),
    ("GET",    "/api/v1/audit/events.csv",                   403,  403,  403, 403, 200,  200,  401),
    ("GET",    "/api/v1/audit/access",                       403,  403,  403, 403, 200,  200,  401),
    # Team-scoped callers get their own team's figures and triggers.
    ("GET",    "/api/v1/metrics",                            200,  200,  200, 200, 200,  200,  401),
    ("GET",    "/api/v1/triggers",                           200,  200,  200, 200, 200,  200,  401),
    ("GET",    "/metrics",                                   403,  403,  403, 403, 200,  200,  401),
    # Outside systems' doors: their own credential only; no person's token opens them.
    ("POST",   "/api/v1/fhir/notifications",                 401,  401,  401, 401, 401,  401,  401),
    ("POST",   "/api/v1/payer/notifications",                401,  401,  401, 401, 401,  401,  401),
    # Twilio signs its webhooks (X-Twilio-Signature) instead of sending a credential: a request
    # without a valid signature is refused, whatever token comes with it.
    ("POST",   "/api/v1/messaging/twilio/status",            403,  403,  403, 403, 403,  403,  403),
    ("POST",   "/api/v1/messaging/twilio/inbound",           403,  403,  403, 403, 403,  403,  403),
    # The codec server: auditors and admins. A CORS preflight carries no credential by design.
    ("OPTIONS", "/codec/{operation}",                        204,  204,  204, 204, 204,  204,  204),
    ("POST",   "/codec/decode",                              403,  403,  403, 403, 200,  200,  401),
    ("POST",   "/codec/encode",                              403,  403,  403, 403, 200,  200,  401),
    # The web UI, called with the session cookie (and a valid CSRF cookie and field on forms).
    # Signing in and out needs no session: the demo sign-in exists in development and test only.
    ("GET",    "/signin",                                    200,  200,  200, 200, 200,  200,  200),
    ("POST",   "/signin",                                    TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE),
    ("GET",    "/signin/oidc",                               404,  404,  404, 404, 404,  404,  404),  # no provider here
    ("GET",    "/signin/callback",                           400,  400,  400, 400, 400,  400,  400),  # none started here
    ("POST",   "/signin/token",                              404,  404,  404, 404, 404,  404,  404),  # gone: no token sign-in
    ("POST",   "/signout",                                   SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN),
    ("GET",    "/",                                          TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE, TO_QUEUE),
    ("GET",    "/queue",                                     200,  200,  200, 200, 200,  200,  SIGN_IN),
    ("GET",    "/queue/rows",                                200,  200,  200, 200, 200,  200,  SIGN_IN),
    ("GET",    "/cases/{case_id}",                           200,  403,  200, 403, 200,  200,  SIGN_IN),
    ("GET",    "/cases/{nowhere}",                           403,  403,  403, 403, 404,  404,  SIGN_IN),
    ("POST",   "/cases/{case_id}/actions/{key}",             TO_CASE, 403, TO_CASE, 403, 403, TO_CASE, SIGN_IN),
    # The auditor's refusal is for the role; the page then shows that no such case exists.
    ("POST",   "/cases/{nowhere}/actions/{key}",             403,  403,  403, 403, 404,  404,  SIGN_IN),
    ("GET",    "/supervisor",                                403,  403,  200, 200, 403,  200,  SIGN_IN),
    # Another team's supervisor gets the page, each case in it refused (see below).
    ("POST",   "/supervisor/reassign",                       403,  403,  200, 200, 403,  200,  SIGN_IN),
    ("GET",    "/dashboard",                                 403,  403,  200, 200, 403,  200,  SIGN_IN),
]
# fmt: on

SKIPPED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static"}
API_PATHS = ("/api/", "/codec/", "/metrics", "/healthz")  # bearer tokens; the rest are pages


def app_routes() -> set[tuple[str, str]]:
    routes = set()
    for route in iter_route_contexts(create_app().routes):
        if route.path in SKIPPED:
            continue
        for method in route.methods or ():
            if method != "HEAD":
                routes.add((method, route.path))
    return routes


def test_every_route_has_its_row() -> None:
    rows = [(method, path) for method, path, *_ in MATRIX]
    assert len(rows) == len(set(rows)), "a route has two rows"
    missing = app_routes() - set(rows)
    assert not missing, f"routes without a row in MATRIX: {sorted(missing)}"


@dataclass
class World:
    stack: Stack
    http: httpx.Client
    tokens: dict[str, str | None]
    case_id: str  # team cardiology's
    reassigned_id: str  # team cardiology's, for the supervisors' bulk reassignment
    csrf: str
    csrf_by_session: dict[str | None, str] = field(default_factory=dict)

    def path(self, template: str) -> str:
        return template.format(
            case_id=self.case_id,
            nowhere=NOWHERE,
            action="add-note",
            key="add-note",
            operation="decode",
        )

    def call(self, method: str, template: str, caller: str) -> httpx.Response:
        path = self.path(template)
        token = self.tokens[caller]
        headers, cookies = {}, {}
        if path.startswith(API_PATHS):
            if token:
                headers["Authorization"] = f"Bearer {token}"
        elif token:
            cookies["ft_session"] = token
        kwargs: dict[str, Any] = {}
        route = template.replace("{nowhere}", "{case_id}")
        if method == "POST" and path.startswith(API_PATHS):
            kwargs["json"] = self.body(route)
        elif method == "POST":
            csrf = self.csrf_for(token)
            cookies["ft_csrf"] = csrf
            kwargs["data"] = {"csrf_token": csrf, **self.form(route)}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.http.cookies.clear()  # nothing carried over from an earlier call
        return self.http.request(method, path, headers=headers, **kwargs)

    def csrf_for(self, token: str | None) -> str:
        """The form token a page gives this session (tokens are bound to who is signed in);
        without a valid session, the sign-in page's own."""
        if token not in self.csrf_by_session:
            self.http.cookies.clear()
            page = self.http.get(
                "/signin", headers={"Cookie": f"ft_session={token}"} if token else {}
            )
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            self.csrf_by_session[token] = found[1] if found else self.csrf
        return self.csrf_by_session[token]

    def body(self, route: str) -> Any:
        """A minimal valid body, so the status tells authorization, not validation."""
        return {
            "/api/v1/referrals": new_order,
            "/api/v1/cases": new_order,
            "/api/v1/cases/{case_id}/actions/{action}": lambda: {"text": "Checked by the matrix"},
            "/api/v1/fhir/notifications": lambda: {"reference": "ServiceRequest/t-matrix"},
            "/api/v1/payer/notifications": lambda: {"resourceType": "Bundle", "type": "history"},
            "/api/v1/messaging/twilio/status": lambda: {
                "MessageSid": "SM0",
                "MessageStatus": "sent",
            },
            "/api/v1/messaging/twilio/inbound": lambda: {"MessageSid": "SM0", "Body": "1"},
            "/codec/decode": lambda: {"payloads": []},
            "/codec/encode": lambda: {"payloads": []},
        }[route]()

    def form(self, route: str) -> dict[str, Any]:
        return {
            "/signin": {"user": "cora"},
            "/signin/token": {"token": self.tokens["admin"]},
            "/signout": {},
            "/cases/{case_id}/actions/{key}": {"text": "Checked by the matrix"},
            "/supervisor/reassign": {"owner": "sam", "case_id": self.reassigned_id},
        }[route]


def _tokens(stack: Stack) -> dict[str, str | None]:
    settings = stack.settings
    tokens: dict[str, str | None] = {
        name: mint_token(settings, user=user, role=role, team=team)
        for name, (user, role, team) in PEOPLE.items()
    }
    admin = jwt.decode(tokens["admin"], options={"verify_signature": False})
    tokens["no_token"] = None
    tokens["expired"] = mint_token(
        settings, user="root", role=Role.ADMIN, ttl=timedelta(minutes=-5)
    )
    elsewhere = settings.model_copy(update={"jwt_issuer": "https://issuer.elsewhere.example"})
    tokens["wrong_issuer"] = mint_token(elsewhere, user="root", role=Role.ADMIN)
    with warnings.catch_warnings():  # PyJWT finds the secret short for HS384; so it is
        warnings.simplefilter("ignore")
        tokens["hs384"] = jwt.encode(admin, settings.jwt_secret, algorithm="HS384")
    tokens["alg_none"] = jwt.encode(admin, None, algorithm="none")
    return tokens


def _seed_triggers(stack: Stack) -> None:
    """A trigger raised for each of two teams, as the schedule's evaluation would leave it."""
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        for team, value in (("cardiology", 0.9), ("imaging", 0.1)):
            session.merge(
                TriggerState(
                    rule="exception-rate",
                    team=team,
                    value=value,
                    above=0.5,
                    raised=value > 0.5,
                    evaluated_at=datetime.now(UTC),
                )
            )
        session.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        tokens = _tokens(stack)
        admin = {"Authorization": f"Bearer {tokens['admin']}"}

        def opened() -> str:
            answer = http.post("/api/v1/referrals", json=new_order(), headers=admin)
            assert answer.status_code == 201, answer.text
            return answer.json()["case_id"]

        case_id, reassigned_id = opened(), opened()
        # The ledger follows the case within moments; the audit rows need it there.
        assert eventually(lambda: http.get(f"/api/v1/cases/{case_id}/audit", headers=admin).json())
        signin = http.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', signin.text)
        assert csrf and signin.cookies["ft_csrf"] == csrf[1]
        _seed_triggers(stack)
        yield World(stack, http, tokens, case_id, reassigned_id, csrf[1])


def _cases() -> list:
    cases = []
    for method, path, *expected in MATRIX:
        people, no_valid_token = expected[:6], expected[6]
        for caller, want in (
            *zip(PEOPLE, people, strict=True),
            *((caller, no_valid_token) for caller in NO_VALID_TOKEN),
        ):
            cases.append(pytest.param(method, path, caller, want, id=f"{method} {path} {caller}"))
    return cases


@pytest.mark.parametrize(("method", "path", "caller", "expected"), _cases())
def test_authorization(world: World, method: str, path: str, caller: str, expected: Any) -> None:
    answer = world.call(method, path, caller)
    if isinstance(expected, Redirect):
        assert (answer.status_code, answer.headers.get("location")) == (
            expected.status,
            world.path(expected.location),
        ), answer.text[:500]
    else:
        assert answer.status_code == expected, answer.text[:500]


def test_a_team_sees_its_own_triggers_only(world: World) -> None:
    for caller, (_, _, team) in PEOPLE.items():
        listed = world.call("GET", "/api/v1/triggers", caller).json()
        teams = {view["team"] for view in listed if view["team"]}
        if team:
            assert teams == {team}, caller
        else:
            assert teams >= {"cardiology", "imaging"}, caller


def test_another_teams_supervisor_reassigns_nothing(world: World) -> None:
    answer = world.call("POST", "/supervisor/reassign", "supervisor_elsewhere")
    assert answer.status_code == 200
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    case = world.http.get(f"/api/v1/cases/{world.reassigned_id}", headers=admin).json()
    assert "ivy" not in {entry["actor"] for entry in case["timeline"]}


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        (path, row[-1])
        for method, path, *row in MATRIX
        if method == "POST" and path.startswith(API_PATHS)
    ],
)
def test_credentials_are_checked_before_the_body(world: World, path: str, refused: int) -> None:
    # No credential and no body: the answer is about the credential (401, or 403 for a missing
    # signature), not about the missing body.
    assert world.http.post(world.path(path)).status_code == refused


SCOPED_ELSEWHERE = ("coordinator_elsewhere", "supervisor_elsewhere")
CASE_ROUTES = [(method, path) for method, path, *_ in MATRIX if "{nowhere}" in path]


def said(answer: httpx.Response) -> str:
    """The reason given: the API's detail, or the web page's alert."""
    if answer.headers["content-type"].startswith("application/json"):
        return str(answer.json()["detail"])
    found = re.search(r'role="alert">([^<]*)<', answer.text)
    return found[1] if found else answer.text


@pytest.mark.parametrize("caller", SCOPED_ELSEWHERE)
@pytest.mark.parametrize(("method", "path"), CASE_ROUTES)
def test_another_teams_case_answers_as_a_case_nobody_has(
    world: World, method: str, path: str, caller: str
) -> None:
    nobodys = world.call(method, path, caller)
    other_teams = world.call(method, path.replace("{nowhere}", "{case_id}"), caller)
    assert (other_teams.status_code, said(other_teams).replace(world.case_id, NOWHERE)) == (
        nobodys.status_code,
        said(nobodys),
    )
    assert "cardiology" not in said(other_teams)  # nor which team the case is in
