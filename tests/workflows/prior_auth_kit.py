"""Builders shared by the prior-authorization scenario tests: a patient's chart in the EHR
sandbox, the case's input, a worker wired to both sandboxes, and the payer's decisions."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.fhir.client import FhirClient
from activities.payer.models import PasDecision
from activities.payer.response import parse_response
from tests.ehr.records import Ehr, new_id
from workers.worker import build_worker
from workflows.care.calendar import BusinessCalendar
from workflows.care.models import Actor, CaseDetail, OrderSummary, Role
from workflows.prior_auth.models import PriorAuthInput, PriorAuthPolicy, ServiceItem
from workflows.prior_auth.rules import Prerequisite, PrerequisiteKind
from workflows.prior_auth.workflow import PriorAuthWorkflow
from workflows.referral.models import ReferralInput
from workflows.referral.workflow import ReferralWorkflow

TEAM = "authorizations"
NEW_YORK = ZoneInfo("America/New_York")
COORDINATOR = Actor(user_id="cora", role=Role.COORDINATOR, team=TEAM)
SUPERVISOR = Actor(user_id="sam", role=Role.SUPERVISOR, team=TEAM)
LAB = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
        }
    ]
}
CREATININE = "2160-0"
DENIAL = {"code": "CR", "display": "Clinical review: criteria not met"}

NOTES = Prerequisite(kind=PrerequisiteKind.CLINICAL_NOTES, within_days=30)
THERAPY = Prerequisite(kind=PrerequisiteKind.CONSERVATIVE_THERAPY, weeks=6)
COVERAGE = Prerequisite(kind=PrerequisiteKind.COVERAGE)
CREATININE_LAB = Prerequisite(kind=PrerequisiteKind.LAB, within_days=30, codes=[CREATININE])


@dataclass
class Chart:
    """A patient's records in the EHR sandbox, as a prior authorization needs them."""

    ehr: Ehr
    patient: str
    payer: str
    coverage: str
    provider: str
    order: str

    def note(self, on: datetime) -> str:
        """A current clinical note dated `on` (DocumentReference.date is an instant)."""
        written = self.ehr.put(
            {
                "resourceType": "DocumentReference",
                "id": new_id("doc"),
                "status": "current",
                "subject": {"reference": self.patient},
                "date": on.astimezone(UTC).isoformat(),
                "author": [{"reference": self.provider}],
                "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
            }
        )
        return f"DocumentReference/{written['id']}"

    def lab(self, on: date) -> str:
        """A final creatinine result taken on `on` (date-only: from 00:00 UTC that day)."""
        written = self.ehr.put(
            {
                "resourceType": "Observation",
                "id": new_id("obs"),
                "status": "final",
                "category": [LAB],
                "code": {"coding": [{"system": "http://loinc.org", "code": CREATININE}]},
                "subject": {"reference": self.patient},
                "effectiveDateTime": on.isoformat(),
            }
        )
        return f"Observation/{written['id']}"

    def therapy(self, start: date, end: date) -> str:
        written = self.ehr.put(
            {
                "resourceType": "Procedure",
                "id": new_id("proc"),
                "status": "completed",
                "code": {"text": "Physical therapy"},
                "subject": {"reference": self.patient},
                "performedPeriod": {"start": start.isoformat(), "end": end.isoformat()},
            }
        )
        return f"Procedure/{written['id']}"

    def report(self) -> str:
        """The delivered study's report, filed against the order."""
        return f"DiagnosticReport/{self.ehr.diagnostic_report(self.patient, self.order)['id']}"


def chart(ehr: Ehr, today: date, code: str = "72148") -> Chart:
    patient = ehr.patient()
    payer = ehr.put({"resourceType": "Organization", "id": new_id("org"), "name": "Sandbox Plan"})
    practitioner = ehr.put(
        {"resourceType": "Practitioner", "id": new_id("prac"), "name": [{"family": "Clinician"}]}
    )
    coverage = ehr.put(
        {
            "resourceType": "Coverage",
            "id": new_id("cov"),
            "status": "active",
            "beneficiary": {"reference": patient},
            "payor": [{"reference": f"Organization/{payer['id']}"}],
            "period": {
                "start": (today - timedelta(days=365)).isoformat(),
                "end": (today + timedelta(days=365)).isoformat(),
            },
        }
    )
    provider = f"Practitioner/{practitioner['id']}"
    order = ehr.order(
        patient,
        requester={"reference": provider},
        code={"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]},
    )
    return Chart(
        ehr, patient, f"Organization/{payer['id']}", f"Coverage/{coverage['id']}", provider, order
    )


def prior_auth_input(
    record: Chart,
    prerequisites: list[Prerequisite],
    code: str = "72148",
    **changes: Any,
) -> PriorAuthInput:
    order_id = record.order.split("/", 1)[1]
    fields: dict[str, Any] = {
        "case_id": f"priorauth-{order_id}",
        "order": OrderSummary(resource=record.order, patient=record.patient, service="MRI"),
        "team": TEAM,
        "location": "Location/main-clinic",
        "calendar": BusinessCalendar(timezone="America/New_York"),
        "policy": PriorAuthPolicy(),
        "ehr": True,
        "items": [ServiceItem(code=code, display="MRI lumbar spine")],
        "coverage": record.coverage,
        "payer": record.payer,
        "provider": record.provider,
        "prerequisites": prerequisites,
    }
    return PriorAuthInput(**{**fields, **changes})


_opened: dict[str, list[WorkflowHandle]] = {}


@asynccontextmanager
async def running(client: Client, engine, task_queue: str, ehr_url: str, payer_url: str):
    """A worker on both sandboxes (the prerequisite check judges freshness as of the case's own
    clock, which time-skipping moves). Cases first finish writing their ledger, then those left
    open are terminated."""
    fhir = FhirClient(ehr_url, timeout=10)
    try:
        async with build_worker(
            client, engine, task_queue=task_queue, fhir=fhir, payer_url=payer_url
        ):
            try:
                yield
            finally:
                for handle in _opened.get(task_queue, []):
                    with suppress(RPCError, AssertionError):
                        await ledger_written(handle)
    finally:
        for handle in _opened.pop(task_queue, []):
            with suppress(RPCError):
                await handle.terminate("test finished")
        await fhir.aclose()


async def open_case(client: Client, task_queue: str, case: PriorAuthInput) -> WorkflowHandle:
    handle = await client.start_workflow(
        PriorAuthWorkflow.run, case, id=case.case_id, task_queue=task_queue
    )
    _opened.setdefault(task_queue, []).append(handle)
    return handle


async def open_referral(client: Client, task_queue: str, case: ReferralInput) -> WorkflowHandle:
    """The referral of the same order, closed down with the test's cases."""
    handle = await client.start_workflow(
        ReferralWorkflow.run, case, id=case.case_id, task_queue=task_queue
    )
    _opened.setdefault(task_queue, []).append(handle)
    return handle


async def read(handle: WorkflowHandle) -> CaseDetail:
    """The case's detail. A query that meets a run handing over to the next one goes unanswered
    on the time-skipping test server: it is asked again."""
    for _ in range(10):
        with suppress(RPCError):
            return await handle.query(PriorAuthWorkflow.detail, rpc_timeout=timedelta(seconds=2))
    raise AssertionError("the case does not answer queries")


async def ledger_written(handle: WorkflowHandle) -> CaseDetail:
    """The case once its ledger entries and notices are all out."""
    for _ in range(250):
        detail = await read(handle)
        if detail.ledger_pending == 0 and detail.notices_pending == 0:
            return detail
        await asyncio.sleep(0.02)
    raise AssertionError("ledger entries or notices still pending")


async def settled(handle: WorkflowHandle, done, seconds: float = 10.0) -> CaseDetail:
    """The case once `done(detail)` holds (checks and requests run beside the case), and the
    ledger has stored every event so far (entries land a few ms after the event)."""
    for _ in range(int(seconds / 0.05)):
        detail = await read(handle)
        if done(detail) and detail.ledger_pending == 0:
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"never settled: stage {detail.stage}, checklist {detail.checklist}")


async def act(handle: WorkflowHandle, update, action) -> CaseDetail:
    await handle.execute_update(update, action)
    return await read(handle)


def set_rules(payer: httpx.Client, *rules: dict[str, Any]) -> None:
    assert payer.put("/sandbox/rules", json=list(rules)).status_code == 200


def received(payer: httpx.Client, case_id: str) -> list[dict[str, Any]]:
    """The requests the payer received for the case, oldest first."""
    return [c for c in payer.get("/sandbox/claims").json() if c["identifier"].startswith(case_id)]


def decide(payer: httpx.Client, case_id: str, submission: int, **decision: Any) -> PasDecision:
    """Decide a pended request in the payer sandbox, and read its decision as the webhook does."""
    answer = payer.post(f"/sandbox/claims/{case_id}-{submission}/decide", json=decision)
    assert answer.status_code == 200, answer.text
    return parse_response(answer.json()["response"])


def close_of_business_before(moment: datetime, days: int) -> datetime:
    """17:00 in New York, `days` weekdays before the local day of `moment`: counted by hand."""
    day = moment.astimezone(NEW_YORK).date()
    while days:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return datetime.combine(day, time(17), NEW_YORK)


def local_day(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def midnight(day: date, zone=UTC) -> datetime:
    return datetime.combine(day, time(0), zone)


def case_suffix() -> str:
    return uuid.uuid4().hex[:8]
