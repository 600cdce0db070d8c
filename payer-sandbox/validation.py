"""Is this a PAS request Bundle? Each refusal names where the problem is, never what was sent
(the Bundle describes a patient)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

MAX_ISSUES = 20


class Refused(Exception):
    """A request the payer cannot process: answered 400 with these OperationOutcome issues."""

    def __init__(self, issues: list[dict[str, Any]], status: int = 400) -> None:
        super().__init__(issues[0]["diagnostics"] if issues else "refused")
        self.issues = issues
        self.status = status

    @property
    def outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": self.issues}


def issue(code: str, diagnostics: str, where: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if where:
        found["expression"] = [where]
    return found


def refuse(code: str, diagnostics: str, where: str | None = None, status: int = 400) -> Refused:
    return Refused([issue(code, diagnostics, where)], status)


def fhir_path(loc: tuple[Any, ...]) -> str:
    path = "Bundle"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def request_bundle(body: Any, *, inquiry: bool = False) -> dict[str, Any]:
    """The Bundle when it is a valid PAS request (or inquiry) Bundle; else `Refused`."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise refuse("structure", "Expected a FHIR Bundle")
    try:
        Bundle.model_validate(body)
    except ValidationError as err:
        raise Refused(
            [
                issue("invalid", f"Invalid FHIR R4: {e['msg']}", fhir_path(e["loc"]))
                for e in err.errors(include_input=False, include_url=False)[:MAX_ISSUES]
            ]
        ) from None
    if body.get("type") != "collection":
        raise refuse("invalid", "A PAS request Bundle has type collection", "Bundle.type")
    for field in ("identifier", "timestamp"):
        if not body.get(field):
            raise refuse("required", f"A PAS request Bundle has an {field}", f"Bundle.{field}")
    entries = body.get("entry") or []
    claim = entries[0].get("resource") if entries else None
    if not claim or claim.get("resourceType") != "Claim":
        raise refuse(
            "invariant", "The first entry of a PAS request is the Claim", "Bundle.entry[0]"
        )
    where = "Bundle.entry[0].resource"
    if claim.get("use") != "preauthorization":
        raise refuse("invalid", "Claim.use must be preauthorization", f"{where}.use")
    if claim.get("status") != "active":
        raise refuse("invalid", "Claim.status must be active", f"{where}.status")
    required = ["identifier", "patient", "insurer", "provider", "insurance"]
    for field in required if inquiry else [*required, "item"]:
        if not claim.get(field):
            raise refuse("required", f"Claim.{field} is required", f"{where}.{field}")
    for n, entry in enumerate(entries):
        if not entry.get("fullUrl"):
            raise refuse("required", "Every entry has a fullUrl", f"Bundle.entry[{n}].fullUrl")
    check_references(entries)
    return body


def check_references(entries: list[dict[str, Any]]) -> None:
    """Every reference resolves to an entry, and no resource appears twice (PAS spec-13, -14)."""
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries):
        resource = entry["resource"]
        for name in names(entry["fullUrl"], resource):
            if name in seen:
                raise refuse("duplicate", "A resource appears more than once", f"Bundle.entry[{n}]")
            seen[name] = n
    problems = []
    for n, entry in enumerate(entries):
        for path, reference in references(entry["resource"], f"Bundle.entry[{n}].resource"):
            if not resolves(reference, seen):
                problems.append(
                    issue("invalid", "The reference does not resolve in the Bundle", path)
                )
    if problems:
        raise Refused(problems[:MAX_ISSUES])


def names(full_url: str, resource: dict[str, Any]) -> list[str]:
    found = [full_url]
    if resource.get("id"):
        found.append(f"{resource['resourceType']}/{resource['id']}")
    return found


def resolves(reference: str, seen: dict[str, int]) -> bool:
    if reference.startswith("#") or reference in seen:
        return True
    if reference.startswith(("urn:", "http://", "https://")):
        return any(name == reference for name in seen)
    # A relative reference: Type/id, as the entry's id or the tail of a RESTful fullUrl.
    tail = "/".join(reference.split("/")[:2])
    return tail in seen or any(name.endswith(f"/{tail}") for name in seen)


def references(value: Any, path: str) -> list[tuple[str, str]]:
    """(FHIRPath, reference) for every Reference.reference inside a resource."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str):
                found.append((path, inner))
            elif key != "contained":
                found += references(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            found += references(inner, f"{path}[{n}]")
    return found
