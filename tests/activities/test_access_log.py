"""Every read of a case is logged: who, which case, which view, newest first."""

from __future__ import annotations

from api.audit import access_log, record_access
from tests.postgres import on_both_databases
from workflows.care.models import Actor, Role

pytestmark = on_both_databases


def test_reads_are_logged_and_found_by_case_and_by_reader(engine):
    cora = Actor(user_id="cora", role=Role.COORDINATOR, team="cardiology")
    audrey = Actor(user_id="audrey", role=Role.AUDITOR)
    record_access(engine, cora, "referral-a", "detail", "req-1")
    record_access(engine, audrey, "referral-a", "audit", "req-2")
    record_access(engine, cora, "referral-b", "history", None)

    of_a = access_log(engine, case_id="referral-a", user_id=None, limit=10)
    assert [(a.user_id, a.role, a.view, a.request_id) for a in of_a] == [
        ("audrey", "auditor", "audit", "req-2"),
        ("cora", "coordinator", "detail", "req-1"),
    ]
    assert of_a[0].at >= of_a[1].at
    by_cora = access_log(engine, case_id=None, user_id="cora", limit=10)
    assert [a.case_id for a in by_cora] == ["referral-b", "referral-a"]
    assert len(access_log(engine, case_id=None, user_id=None, limit=2)) == 2
