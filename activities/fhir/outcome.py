"""What of an EHR's OperationOutcome may travel: its codes and a capped, scrubbed diagnostic.

An OperationOutcome's text is the server's prose and may describe the patient ("Jane Doe, born
1961-04-09, has no active coverage"). A refusal travels far: workflow history, the case timeline,
the audit ledger, its proof and CSV, and API error bodies. So only the issue codes leave the FHIR
client, with the first diagnostic scrubbed of what could identify someone: quoted values, e-mail
addresses, anything with digits in it other than FHIR references and FHIRPath, and capitalised
words other than FHIR type names and the words diagnostics begin with.
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

MAX_DIAGNOSTIC = 160
REDACTED = "[redacted]"
CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-.]{0,63}$")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”|‘[^’]*’")
EMAIL = re.compile(r"\S+@\S+")
REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
PUNCTUATION = ".,;:()!?"
# Capitalised words that open or fill diagnostics and name nobody.
PLAIN_WORDS = set(
    """a an the this that no not none invalid missing required unknown expected unexpected
    cannot could error errors failed failure must should may is are was were be has have does
    resource resources value values element field type reference references version constraint
    profile id identifier code status format date string search parameter parameters
    unsupported duplicate multiple only one too many conflict precondition already exists
    deleted gone forbidden unauthorized access denied not found request bad server internal
    validation rule rules at in on of for to with and or by fhir json xml http url
    operationoutcome""".split()
)


def codes(outcome: Any) -> list[str]:
    """Each issue's code and its details' codes, e.g. ["invalid", "MSG_PARAM_INVALID"]."""
    found: list[str] = []
    for issue in _issues(outcome):
        coded = [issue.get("code")] + [
            coding.get("code") for coding in (issue.get("details") or {}).get("coding") or []
        ]
        found += [c for c in coded if isinstance(c, str) and CODE.match(c) and c not in found]
    return found


def diagnostic(outcome: Any) -> str:
    """The first issue's text (details.text, else diagnostics) and where (its expression),
    scrubbed and capped."""
    for issue in _issues(outcome):
        text = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""
        where = ", ".join(e for e in issue.get("expression") or [] if isinstance(e, str))
        if text or where:
            said = scrub(f"{where}: {text}" if where and text else where or text)
            return said if len(said) <= MAX_DIAGNOSTIC else said[: MAX_DIAGNOSTIC - 1] + "…"
    return ""


def summary(outcome: Any) -> str:
    """Codes and diagnostic in one line, as a refusal carries them: "invalid: Task.owner: ..."."""
    parts = [", ".join(codes(outcome)), diagnostic(outcome)]
    return ": ".join(part for part in parts if part)


def scrub(text: str) -> str:
    text = EMAIL.sub(REDACTED, QUOTED.sub(REDACTED, text))
    words = []
    for word in text.split():
        core = word.strip(PUNCTUATION)
        if core and core != REDACTED and not _harmless(core):
            word = word.replace(core, REDACTED)
        if not (word == REDACTED and words and words[-1] == REDACTED):
            words.append(word)
    return " ".join(words)


def _harmless(word: str) -> bool:
    if REFERENCE.match(word):
        return True  # a FHIR id names a record, not a person
    head = re.split(r"[.\[]", word, maxsplit=1)[0]
    if "." in word and _is_fhir_type(head):
        return True  # FHIRPath, e.g. Appointment.participant[0].actor
    if any(ch.isdigit() for ch in word):
        return False  # dates, phone numbers, record numbers
    if word.islower() or word == "-":
        return True
    return word.lower() in PLAIN_WORDS or _is_fhir_type(word)


def _is_fhir_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError):
        return False
    return True


def _issues(outcome: Any) -> list[dict[str, Any]]:
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    return [issue for issue in outcome.get("issue") or [] if isinstance(issue, dict)]
