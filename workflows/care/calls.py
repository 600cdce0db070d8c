"""Calls that must get through, for any pathway: to the EHR, to a payer. They retry for as long as the other
side is down, and the case says meanwhile that it is waiting, as the care kit's verification does
(workflows/care/ehr.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.care.case import Case
    from workflows.care.ehr import ANSWER_WITHIN
    from workflows.care.models import SYSTEM, EventKind

# No attempt limit: an outage is waited out. A refusal (4xx) is final and comes back at once.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=2),
)
CALL_TIMEOUT = timedelta(seconds=60)
WAITING_SINCE = "waiting_on_{}_since"


async def patiently(case: Case, handles: list[workflow.ActivityHandle[Any]], what: str) -> None:
    """Wait for every call; if they take longer than an action waits, the case records that it
    waits on `what` ("the EHR", "the payer") and, once answered, that it answered again."""
    try:
        await workflow.wait_condition(lambda: all(h.done() for h in handles), timeout=ANSWER_WITHIN)
        return
    except TimeoutError:
        pass
    moment = WAITING_SINCE.format(what.removeprefix("the ").lower())
    case.moments[moment] = workflow.now()
    case.record(EventKind.EXCEPTION_RAISED, SYSTEM, f"Waiting on {what}; retrying until it answers")
    await workflow.wait_condition(lambda: all(h.done() for h in handles))
    case.moments.pop(moment, None)
    case.record(EventKind.EXCEPTION_CLEARED, SYSTEM, f"{what[0].upper()}{what[1:]} answered again")
