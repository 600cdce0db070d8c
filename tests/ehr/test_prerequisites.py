"""Prior-authorization prerequisites against the real sandbox: each kind's rule, worked by hand.

Dates are written as a clinician's EHR writes them, mostly date-only; a date-only counts from
00:00 UTC that day, a period's last day until the next 00:00 UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient
from activities.fhir.failures import UNAVAILABLE
from activities.fhir.models import PrerequisiteCheck
from activities.fhir.prerequisites import PrerequisiteActivities, instant
from workflows.prior_auth.rules import Prerequisite, PrerequisiteKind

from .records import Ehr, new_id

TODAY = datetime.now(UTC).date()
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
LAB = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
        }
    ]
}


def ago(days: int) -> str:
    """The date `days` before today, as a FHIR date."""
    return (TODAY - timedelta(days=days)).isoformat()


def at(days: int, hour: int = 9) -> str:
    """An instant `days` before today (DocumentReference.date is an instant, not a date)."""
    return f"{ago(days)}T{hour:02}:00:00Z"


def midnight(day: date | str) -> datetime:
    return datetime.combine(date.fromisoformat(str(day)), time.min, UTC)


@pytest.fixture(scope="module")
def ehr(ehr_url: str) -> Ehr:
    return Ehr(ehr_url)


@pytest.fixture
async def prerequisites(ehr_url: str):
    client = FhirClient(ehr_url, timeout=5)
    yield PrerequisiteActivities(client)
    await client.aclose()


@pytest.fixture
def patient(ehr: Ehr) -> str:
    return ehr.patient()


def check(patient: str, kind: PrerequisiteKind, **rule: Any) -> PrerequisiteCheck:
    more = {key: rule.pop(key) for key in ("documents", "coverage", "service_date") if key in rule}
    return PrerequisiteCheck(
        order="ServiceRequest/sr-1",
        patient=patient,
        prerequisite=Prerequisite(kind=kind, **rule),
        **more,
    )


def note(ehr: Ehr, patient: str, **dated: Any) -> dict[str, Any]:
    return ehr.put(
        {
            "resourceType": "DocumentReference",
            "id": new_id("doc"),
            "status": dated.pop("status", "current"),
            "subject": {"reference": patient},
            "content": [{"attachment": {"contentType": "text/plain", "title": "Progress note"}}],
            **dated,
        }
    )


def report(ehr: Ehr, patient: str, section: str = "RAD", code: str = "72148", **more: Any):
    return ehr.put(
        {
            "resourceType": "DiagnosticReport",
            "id": new_id("dr"),
            "status": more.pop("status", "final"),
            "category": [{"coding": [{"system": V2_0074, "code": section}]}],
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]},
            "subject": {"reference": patient},
            **more,
        }
    )


def lab(ehr: Ehr, patient: str, effective: str, code: str = "4548-4", **more: Any):
    return ehr.put(
        {
            "resourceType": "Observation",
            "id": new_id("obs"),
            "status": more.pop("status", "final"),
            "category": [LAB],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": patient},
            "effectiveDateTime": effective,
            **more,
        }
    )


def therapy(ehr: Ehr, patient: str, start: str, end: str | None, status: str = "completed"):
    period = {"start": start, **({"end": end} if end else {})}
    return ehr.put(
        {
            "resourceType": "Procedure",
            "id": new_id("proc"),
            "status": status,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91251008"}]},
            "subject": {"reference": patient},
            "performedPeriod": period,
        }
    )


def coverage(ehr: Ehr, patient: str, start: str, end: str, status: str = "active"):
    return ehr.put(
        {
            "resourceType": "Coverage",
            "id": new_id("cov"),
            "status": status,
            "beneficiary": {"reference": patient},
            "payor": [{"display": "Self"}, {"reference": "Organization/payer-1"}],
            "period": {"start": start, "end": end},
        }
    )


def ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


# -- clinical notes ---------------------------------------------------------------------------


async def test_a_note_from_29_days_ago_counts_for_one_more_day(ehr, prerequisites, patient):
    fresh = note(ehr, patient, date=at(29))
    found = await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))
    assert found.met, found.reason
    assert [e.reference for e in found.evidence] == [ref(fresh)]
    assert found.observed_at == midnight(ago(29)) + timedelta(hours=9)
    assert found.expires_at == midnight(TODAY + timedelta(days=1)) + timedelta(hours=9)


async def test_a_note_from_31_days_ago_does_not(ehr, prerequisites, patient):
    note(ehr, patient, date=at(31))
    found = await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))
    assert (found.met, found.reason) == (False, "Clinical note from 31 days ago; 30 days allowed")
    assert found.evidence == [] and found.expires_at is None


async def test_no_note_at_all_and_a_retracted_one(ehr, prerequisites, patient):
    note(ehr, patient, date=at(1), status="entered-in-error")
    found = await prerequisites.check(
        check(patient, PrerequisiteKind.CLINICAL_NOTES, within_days=7)
    )
    assert (found.met, found.reason) == (False, "No clinical note in the last 7 days")


async def test_the_freshest_of_two_notes_is_the_evidence(ehr, prerequisites, patient):
    note(ehr, patient, date=at(20))
    # Its date is an instant in another zone: 2 days ago at 23:30 in UTC-5 is 04:30 UTC the day after.
    evening = datetime.combine(TODAY - timedelta(days=2), time(23, 30)).isoformat() + "-05:00"
    freshest = note(ehr, patient, date=evening)
    found = await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))
    assert found.met and found.evidence[0].reference == ref(freshest)
    assert found.observed_at == midnight(ago(1)) + timedelta(hours=4, minutes=30)
    assert found.expires_at == found.observed_at + timedelta(days=30)


async def test_a_note_is_dated_by_its_period_else_by_when_it_was_written(
    ehr, prerequisites, patient
):
    note(ehr, patient, context={"period": {"start": ago(40)}})
    stale = await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))
    assert stale.reason == "Clinical note from 40 days ago; 30 days allowed"
    undated = note(ehr, patient)
    found = await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))
    assert found.met and found.observed_at == instant(undated["meta"]["lastUpdated"])


async def test_attached_notes_count_first_if_they_are_the_patients(ehr, prerequisites, patient):
    note(ehr, patient, date=at(2))  # fresher, but the care team chose another
    chosen = note(ehr, patient, date=at(10))
    someone_elses = note(ehr, ehr.patient(), date=at(1))
    retracted = note(ehr, patient, date=at(1), status="entered-in-error")
    attached = [ref(someone_elses), ref(retracted), ref(chosen)]
    found = await prerequisites.check(
        check(patient, PrerequisiteKind.CLINICAL_NOTES, documents=attached)
    )
    assert found.met and found.evidence[0].reference == ref(chosen)
    assert found.expires_at == midnight(ago(10)) + timedelta(days=30, hours=9)

    alone = ehr.patient()
    theirs = await prerequisites.check(
        check(alone, PrerequisiteKind.CLINICAL_NOTES, documents=[ref(someone_elses)])
    )
    assert not theirs.met
    assert theirs.reason == (
        f"No clinical note in the last 30 days; {ref(someone_elses)} is not for this case's patient"
    )


async def test_evidence_is_the_version_found_and_changes_with_it(ehr, prerequisites, patient):
    first = note(ehr, patient, date=at(3))
    before = (await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))).evidence[
        0
    ]
    assert before.version_id == first["meta"]["versionId"] and len(before.sha256 or "") == 64
    again = (await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))).evidence[0]
    assert again == before
    ehr.put({**first, "description": "Addendum"})
    after = (await prerequisites.check(check(patient, PrerequisiteKind.CLINICAL_NOTES))).evidence[0]
    assert after.version_id != before.version_id and after.sha256 != before.sha256


# -- imaging and labs ---------------------------------------------------------------------------


async def test_imaging_is_a_filed_radiology_report_within_90_days(ehr, prerequisites, patient):
    report(ehr, patient, status="preliminary", effectiveDateTime=ago(1))
    filed_as_lab = report(ehr, patient, section="LAB", effectiveDateTime=ago(1))
    filed = report(ehr, patient, issued=f"{ago(80)}T09:00:00Z")  # no effective: its issue date
    found = await prerequisites.check(check(patient, PrerequisiteKind.IMAGING))
    assert found.met and found.evidence[0].reference == ref(filed)
    assert found.expires_at == midnight(ago(80)) + timedelta(days=90, hours=9)
    # A rule's codes name the study, whichever section filed it.
    mri = await prerequisites.check(check(patient, PrerequisiteKind.IMAGING, codes=["72148"]))
    assert mri.met and mri.evidence[0].reference == ref(filed_as_lab)
    ct = await prerequisites.check(check(patient, PrerequisiteKind.IMAGING, codes=["74177"]))
    assert ct.reason == "No imaging report (74177) in the last 90 days"


async def test_a_lab_whose_date_plus_30_days_is_tomorrow_expires_tomorrow(
    ehr, prerequisites, patient
):
    result = lab(ehr, patient, ago(29))
    found = await prerequisites.check(check(patient, PrerequisiteKind.LAB))
    assert found.met and found.evidence[0].reference == ref(result)
    assert found.expires_at == midnight(TODAY + timedelta(days=1))


async def test_codes_filter_out_another_lab(ehr, prerequisites, patient):
    lab(ehr, patient, ago(2), code="2345-7")  # glucose, not the A1c the rule asks for
    lab(ehr, patient, ago(1), code="4548-4", status="preliminary")
    found = await prerequisites.check(check(patient, PrerequisiteKind.LAB, codes=["4548-4"]))
    assert (found.met, found.reason) == (False, "No lab result (4548-4) in the last 30 days")
    a1c = report(ehr, patient, section="LAB", code="4548-4", effectiveDateTime=ago(5))
    found = await prerequisites.check(check(patient, PrerequisiteKind.LAB, codes=["4548-4"]))
    assert found.met and found.evidence[0].reference == ref(a1c)


async def test_a_stale_lab_is_named_by_its_age(ehr, prerequisites, patient):
    lab(ehr, patient, ago(41))
    found = await prerequisites.check(check(patient, PrerequisiteKind.LAB))
    assert (found.met, found.reason) == (False, "Lab result from 41 days ago; 30 days allowed")


# -- conservative therapy -----------------------------------------------------------------------


async def test_five_weeks_of_therapy_fail_a_six_week_rule_seven_pass(ehr, prerequisites, patient):
    short = therapy(ehr, patient, ago(100), ago(100 - 35 + 1))  # 35 whole days
    rule = check(patient, PrerequisiteKind.CONSERVATIVE_THERAPY)
    found = await prerequisites.check(rule)
    assert found.reason == f"{ref(short)} lasted 35 days; 6 weeks required"
    enough = therapy(ehr, patient, ago(90), ago(90 - 49 + 1))  # 49 whole days
    found = await prerequisites.check(rule)
    assert found.met and found.evidence[0].reference == ref(enough)
    assert (found.observed_at, found.expires_at) == (midnight(ago(90)), None)


async def test_six_whole_days_weeks_are_six_weeks(ehr, prerequisites, patient):
    therapy(ehr, patient, ago(60), ago(60 - 42 + 1))  # first and last day both count
    assert (await prerequisites.check(check(patient, PrerequisiteKind.CONSERVATIVE_THERAPY))).met


async def test_ongoing_therapy_counts_up_to_today(ehr, prerequisites, patient):
    therapy(ehr, patient, ago(41), None, status="in-progress")
    rule = check(patient, PrerequisiteKind.CONSERVATIVE_THERAPY)
    assert not (await prerequisites.check(rule)).met
    ongoing = therapy(ehr, patient, ago(43), None, status="in-progress")
    found = await prerequisites.check(rule)
    assert found.met and found.evidence[0].reference == ref(ongoing)


async def test_therapy_with_a_window_expires_after_its_last_day(ehr, prerequisites, patient):
    done = therapy(ehr, patient, ago(200), ago(120))
    found = await prerequisites.check(
        check(patient, PrerequisiteKind.CONSERVATIVE_THERAPY, within_days=180)
    )
    assert found.met and found.expires_at == midnight(ago(119)) + timedelta(days=180)
    stale = await prerequisites.check(
        check(patient, PrerequisiteKind.CONSERVATIVE_THERAPY, within_days=90)
    )
    assert stale.reason == f"{ref(done)} ended 119 days ago; 90 days allowed"


# -- coverage -------------------------------------------------------------------------------------


async def test_active_coverage_names_the_payer_and_ends_with_its_period(
    ehr, prerequisites, patient
):
    coverage(ehr, patient, ago(100), ago(-5))  # also in force, but ends sooner
    plan = coverage(ehr, patient, ago(100), ago(-30))
    found = await prerequisites.check(check(patient, PrerequisiteKind.COVERAGE))
    assert found.met and (found.coverage, found.payer) == (ref(plan), "Organization/payer-1")
    assert found.expires_at == midnight(ago(-31))  # the end of its last day
    after = await prerequisites.check(
        check(patient, PrerequisiteKind.COVERAGE, service_date=TODAY + timedelta(days=31))
    )
    assert after.reason.startswith(f"No active coverage for {ago(-31)} (")
    assert f"{ref(plan)} ended {ago(-30)}" in after.reason
    before = await prerequisites.check(
        check(patient, PrerequisiteKind.COVERAGE, coverage=ref(plan), service_date=ago(101))
    )
    assert before.reason == f"{ref(plan)} starts {ago(100)}"


async def test_coverage_ending_yesterday_does_not_count_but_today_does(ehr, prerequisites, patient):
    ended = coverage(ehr, patient, ago(365), ago(1))
    named = check(patient, PrerequisiteKind.COVERAGE, coverage=ref(ended))
    found = await prerequisites.check(named)
    assert (found.met, found.reason) == (False, f"{ref(ended)} ended {ago(1)}")
    today = coverage(ehr, patient, ago(365), ago(0))
    found = await prerequisites.check(check(patient, PrerequisiteKind.COVERAGE))
    assert found.met and found.coverage == ref(today)


@pytest.mark.parametrize(
    ("status", "someone_else", "reason"),
    [("cancelled", False, "is cancelled"), ("active", True, "is not for this case's patient")],
)
async def test_named_coverage_that_does_not_count(
    ehr, prerequisites, patient, status, someone_else, reason
):
    holder = ehr.patient() if someone_else else patient
    plan = coverage(ehr, holder, ago(10), ago(-10), status=status)
    found = await prerequisites.check(check(patient, PrerequisiteKind.COVERAGE, coverage=ref(plan)))
    assert (found.met, found.reason) == (False, f"{ref(plan)} {reason}")
    missing = await prerequisites.check(
        check(patient, PrerequisiteKind.COVERAGE, coverage="Coverage/nowhere")
    )
    assert missing.reason == "Coverage/nowhere is not in the EHR"


# -- what the EHR answers --------------------------------------------------------------------------


async def test_a_server_that_ignores_the_search_filters_is_filtered_again():
    """Servers may ignore search parameters they do not support: each match is checked again."""
    patient, other = "Patient/p1", "Patient/p2"

    def result(rid: str, who: str = patient, status: str = "final", code: str = "4548-4"):
        return {
            "resourceType": "Observation",
            "id": rid,
            "meta": {"versionId": "1", "lastUpdated": f"{ago(1)}T00:00:00Z"},
            "status": status,
            "category": [LAB],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": who},
            "effectiveDateTime": f"{ago(1)}T08:00:00Z",
        }

    everything = [
        result("theirs", who=other),
        result("draft", status="preliminary"),
        result("glucose", code="2345-7"),
        {**result("vital"), "category": [{"coding": [{"code": "vital-signs"}]}]},
        {**result("old"), "effectiveDateTime": f"{ago(3)}T08:00:00Z"},
    ]

    def lenient(request: httpx.Request) -> httpx.Response:
        kept = everything if request.url.path.endswith("/Observation") else []
        entries = [{"resource": resource} for resource in kept]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries}
        )

    client = FhirClient("http://ehr.test/fhir", transport=httpx.MockTransport(lenient))
    found = await PrerequisiteActivities(client).check(
        check(patient, PrerequisiteKind.LAB, codes=["4548-4"])
    )
    assert found.met and found.evidence[0].reference == "Observation/old"


# -- refusals and outages --------------------------------------------------------------------------


def answering(status: int):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden"}],
    }
    return FhirClient(
        "http://ehr.test/fhir",
        transport=httpx.MockTransport(lambda request: httpx.Response(status, json=outcome)),
    )


async def test_a_refusal_is_an_answer_and_an_outage_is_retried():
    patient = f"Patient/{uuid.uuid4().hex[:8]}"
    refused = await PrerequisiteActivities(answering(403)).check(
        check(patient, PrerequisiteKind.LAB)
    )
    assert not refused.met and "HTTP 403" in refused.reason
    with pytest.raises(ApplicationError) as down:
        await PrerequisiteActivities(answering(503)).check(
            check(patient, PrerequisiteKind.COVERAGE)
        )
    assert down.value.type == UNAVAILABLE and not down.value.non_retryable
