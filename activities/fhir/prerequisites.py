"""Prior-authorization prerequisites, verified in the EHR with evidence, as a referral's claims are.

Each check answers `PrerequisiteFound`: met, with the freshest record that meets the rule (its
version and hash), its own date and when it stops counting; or not met, with a reason the owner
can act on that names only ids, dates and counts, never what the record says. A refusal (4xx) is
a verdict; an EHR that is down raises, and Temporal retries.

Dates. A FHIR date may be a year, a month, a day or a dateTime with an offset. As the moment a
record was made it is its first instant (a day: 00:00 UTC); as the end of a period it is the first
instant after it (a day: the next 00:00 UTC), so a period of 42 whole days lasts 6 weeks and a
Coverage ending today counts all day. `expires_at` is the instant evidence stops counting: a
record is fresh while `observed_at <= now < observed_at + within_days`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fhir.client import FhirClient, cap
from activities.fhir.evidence import FILED_REPORT, evidence_of
from activities.fhir.models import PrerequisiteCheck, PrerequisiteFound
from workflows.prior_auth.rules import Prerequisite, PrerequisiteKind

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service sections
IMAGING = {(V2_0074, "RAD"), ("http://loinc.org", "LP29684-5")}  # LP29684-5: Radiology
LAB_REPORT = {(V2_0074, "LAB")}
LAB_OBSERVATION = {("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")}
FINAL_RESULT = {"final", "amended", "corrected"}
THERAPY = {"completed", "in-progress"}


Categories = set[tuple[str, str]] | None  # (system, code): one must be present; None: any


class Records(NamedTuple):
    """A kind of dated record: its name, and where it is found (resource type, statuses,
    categories)."""

    noun: str
    sources: tuple[tuple[str, set[str], Categories], ...]


RECORDS = {
    PrerequisiteKind.CLINICAL_NOTES: Records(
        "clinical note", (("DocumentReference", {"current"}, None),)
    ),
    PrerequisiteKind.IMAGING: Records(
        "imaging report", (("DiagnosticReport", FILED_REPORT, IMAGING),)
    ),
    PrerequisiteKind.LAB: Records(
        "lab result",
        (
            ("Observation", FINAL_RESULT, LAB_OBSERVATION),
            ("DiagnosticReport", FILED_REPORT, LAB_REPORT),
        ),
    ),
}
# Where each record keeps its own date, first present wins.
DATED_BY = {
    "DocumentReference": ("date", "context.period.start", "meta.lastUpdated"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
}
CODED_BY = {"DocumentReference": "type"}  # the field a rule's codes match; else `code`


def instant(value: Any, *, after: bool = False) -> datetime | None:
    """A FHIR date or dateTime in UTC: its first instant, or with `after` the first one after it.
    None when absent or not a date."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if "T" in value:
            moment = datetime.fromisoformat(value)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        year, month, day = ([int(part) for part in value.split("-")] + [0, 0])[:3]
        first = date(year, month or 1, day or 1)
    except ValueError:
        return None
    if after and day:
        first += timedelta(days=1)
    elif after:  # a month or a year: the first day of the next one
        first = date(year + (month in (0, 12)), month % 12 + 1 if month else 1, 1)
    return datetime.combine(first, time.min, UTC)


def first(pair: tuple[datetime, Any]) -> datetime:
    return pair[0]


def dig(resource: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        resource = resource.get(key) if isinstance(resource, dict) else None
    return resource


def observed(resource: dict[str, Any]) -> datetime | None:
    paths = DATED_BY.get(resource.get("resourceType", ""), ())
    return next((i for i in (instant(dig(resource, p)) for p in paths) if i), None)


def codings(concepts: Any) -> set[tuple[str | None, str | None]]:
    concepts = concepts if isinstance(concepts, list) else [concepts] if concepts else []
    return {(c.get("system"), c.get("code")) for cc in concepts for c in cc.get("coding") or []}


def coded(resource: dict[str, Any], codes: list[str]) -> bool:
    field = CODED_BY.get(resource.get("resourceType", ""), "code")
    return not codes or any(code in codes for _, code in codings(resource.get(field)))


def categories(rule: Prerequisite, wanted: Categories) -> Categories:
    # The codes an imaging rule names are the study's (CPT 72148), whichever section filed it.
    return None if rule.kind is PrerequisiteKind.IMAGING and rule.codes else wanted


def qualifies(resource: dict[str, Any], rule: Prerequisite) -> bool:
    """Is this record of the kind the rule asks for (its date aside)?"""
    for kind, statuses, wanted in RECORDS[rule.kind].sources:
        if resource.get("resourceType") == kind and resource.get("status") in statuses:
            wanted = categories(rule, wanted)
            filed = wanted is None or bool(codings(resource.get("category")) & wanted)
            return filed and coded(resource, rule.codes)
    return False


def performed(procedure: dict[str, Any], now: datetime) -> tuple[datetime, datetime] | None:
    """When a therapy ran: its performedPeriod, an ongoing one up to now (neither past now)."""
    start = instant(dig(procedure, "performedPeriod.start"))
    end = instant(dig(procedure, "performedPeriod.end"), after=True)
    end = min(end or now, now) if end or procedure.get("status") == "in-progress" else None
    return (start, end) if start and end and start <= end else None


def not_met(reason: str) -> PrerequisiteFound:
    return PrerequisiteFound(met=False, reason=cap(reason, 500))


async def _refusal_as_not_met(checking: Awaitable[PrerequisiteFound]) -> PrerequisiteFound:
    """A 4xx cannot be retried away: it is the answer, in the client's scrubbed words."""
    try:
        return await checking
    except ApplicationError as err:
        if not err.non_retryable:
            raise
        return not_met(err.message)


def theirs(resource: dict[str, Any], patient: str) -> bool:
    field = "beneficiary" if resource.get("resourceType") == "Coverage" else "subject"
    return dig(resource, f"{field}.reference") == patient


def found(
    resource: dict[str, Any], observed_at: datetime | None, expires_at: datetime | None, **more: Any
) -> PrerequisiteFound:
    evidence = [evidence_of(resource)]
    return PrerequisiteFound(
        met=True, evidence=evidence, observed_at=observed_at, expires_at=expires_at, **more
    )


def coverage_problem(coverage: dict[str, Any], patient: str, day: date) -> str | None:
    """Why this Coverage is not in force on the service day, or None when it is."""
    name = f"{coverage.get('resourceType')}/{coverage.get('id')}"
    start, end = dig(coverage, "period.start"), dig(coverage, "period.end")
    opens = datetime.combine(day, time.min, UTC)
    closes = opens + timedelta(days=1)
    if coverage.get("resourceType") != "Coverage":
        return f"{name} is not a Coverage"
    if coverage.get("status") != "active":
        return f"{name} is {coverage.get('status')}"
    if not theirs(coverage, patient):
        return f"{name} is not for this case's patient"
    if (instant(start) or opens) >= closes:
        return f"{name} starts {start[:10]}"
    if (instant(end, after=True) or closes) <= opens:
        return f"{name} ended {end[:10]}"
    return None


class PrerequisiteActivities:
    def __init__(self, fhir: FhirClient) -> None:
        self.fhir = fhir

    @activity.defn(name="check_prerequisite")
    async def check(self, check: PrerequisiteCheck) -> PrerequisiteFound:
        """Is the prerequisite on file and fresh enough, as of now (the activity's clock)?"""
        now = check.as_of or datetime.now(UTC)
        match check.prerequisite.kind:
            case PrerequisiteKind.CONSERVATIVE_THERAPY:
                checking = self._therapy(check, now)
            case PrerequisiteKind.COVERAGE:
                checking = self._coverage(check, now)
            case _:
                checking = self._dated(check, now)
        return await _refusal_as_not_met(checking)

    async def _dated(self, check: PrerequisiteCheck, now: datetime) -> PrerequisiteFound:
        """The freshest note, imaging report or lab result: of those the care team attached
        first, else of the patient's in the EHR."""
        rule, records = check.prerequisite, RECORDS[check.prerequisite.kind]
        days = rule.days
        window = timedelta(days=days)
        attached, problems = [], []
        for reference in check.documents:
            if reference.partition("/")[0] not in {kind for kind, *_ in records.sources}:
                continue  # attached for another prerequisite
            raw = await self.fhir.read_if_exists(reference)
            if raw is None:
                problems.append(f"{reference} is not in the EHR")
            elif not theirs(raw, check.patient):
                problems.append(f"{reference} is not for this case's patient")
            elif not qualifies(raw, rule):
                problems.append(f"{reference} is not a {records.noun} that counts")
            else:
                attached.append(raw)
        dated = [(when, raw) for raw in attached if (when := observed(raw)) and when <= now]
        if not dated or max(dated, key=first)[0] + window <= now:
            # One window further back than the rule asks, so that a near miss can be named.
            searched = await self._search(check, since=now - 2 * window)
            dated += [(when, raw) for raw in searched if (when := observed(raw)) and when <= now]
        if dated:
            when, raw = max(dated, key=first)
            if when + window > now:
                return found(raw, when, when + window)
            noun = records.noun.capitalize()
            reason = f"{noun} from {(now.date() - when.date()).days} days ago; {days} days allowed"
        else:
            codes = f" ({', '.join(rule.codes)})" if rule.codes else ""
            reason = f"No {records.noun}{codes} in the last {days} days"
        return not_met("; ".join([reason, *problems]))

    async def _search(self, check: PrerequisiteCheck, since: datetime) -> list[dict[str, Any]]:
        rule, found_ = check.prerequisite, []
        for kind, statuses, wanted in RECORDS[rule.kind].sources:
            # A record is written no earlier than the date it carries, so `_lastUpdated` keeps
            # every record dated since `since`, whichever of its dates counts (`date` would not).
            params = {"patient": check.patient, "status": ",".join(sorted(statuses))}
            params["_lastUpdated"] = f"ge{since.isoformat()}"
            if rule.codes:
                params[CODED_BY.get(kind, "code")] = ",".join(rule.codes)
            if wanted := categories(rule, wanted):
                params["category"] = ",".join(sorted(code for _, code in wanted))
            async for page in self.fhir.pages(kind, {**params, "_count": "100"}):
                found_ += [r for r in page if theirs(r, check.patient) and qualifies(r, rule)]
        return found_

    async def _therapy(self, check: PrerequisiteCheck, now: datetime) -> PrerequisiteFound:
        """A completed or ongoing Procedure lasting `weeks` (an ongoing one counts up to now);
        with `within_days`, ended no longer ago than that."""
        rule, weeks = check.prerequisite, check.prerequisite.therapy_weeks
        params = {"patient": check.patient, "status": ",".join(sorted(THERAPY))}
        if rule.codes:
            params["code"] = ",".join(rule.codes)
        spans = [
            (*span, raw)
            for raw in await self.fhir.search("Procedure", params)
            if raw.get("status") in THERAPY and theirs(raw, check.patient)
            if coded(raw, rule.codes) and (span := performed(raw, now))
        ]
        enough = [s for s in spans if s[1] - s[0] >= timedelta(weeks=weeks)]
        if not enough:
            if not spans:
                return not_met(f"No conservative therapy of {weeks} weeks on file")
            start, end, raw = max(spans, key=lambda s: s[1] - s[0])
            lasted = (end - start).days
            return not_met(f"Procedure/{raw['id']} lasted {lasted} days; {weeks} weeks required")
        start, end, raw = max(enough, key=lambda s: s[1])  # the latest to end
        if not rule.within_days:
            return found(raw, start, None)
        if end + timedelta(days=rule.within_days) <= now:
            ago = f"ended {(now - end).days} days ago; {rule.within_days} days allowed"
            return not_met(f"Procedure/{raw['id']} {ago}")
        return found(raw, start, end + timedelta(days=rule.within_days))

    async def _coverage(self, check: PrerequisiteCheck, now: datetime) -> PrerequisiteFound:
        """The named Coverage, else the patient's, in force on the service day (or today)."""
        day = check.service_date or now.date()
        if check.coverage:
            named = await self.fhir.read_if_exists(check.coverage)
            if named is None:
                return not_met(f"{check.coverage} is not in the EHR")
            candidates = [named]
        else:
            candidates = await self.fhir.search("Coverage", {"beneficiary": check.patient})
        problems = [coverage_problem(raw, check.patient, day) for raw in candidates]
        good = [raw for raw, problem in zip(candidates, problems, strict=True) if not problem]
        said = "; ".join(p for p in problems if p)
        if not good and check.coverage:
            return not_met(said)
        if not good:
            return not_met(f"No active coverage for {day}" + (f" ({said})" if said else ""))
        never = datetime.max.replace(tzinfo=UTC)
        raw = max(good, key=lambda c: instant(dig(c, "period.end"), after=True) or never)
        payers = [dig(payor, "reference") or "" for payor in raw.get("payor") or []]
        return found(
            raw,
            instant(dig(raw, "period.start")) or instant(dig(raw, "meta.lastUpdated")),
            instant(dig(raw, "period.end"), after=True),
            payer=next((p for p in payers if p.startswith("Organization/")), None),
            coverage=f"Coverage/{raw['id']}",
        )
