"""Log lines carry no PHI even when a caller passes it by mistake."""

from __future__ import annotations

import json

import structlog

from workers import logs


def test_a_log_line_loses_phi_keys_and_says_which(capsys):
    logs.configure("INFO", json=True)
    structlog.contextvars.bind_contextvars(case_id="referral-42", note="bound by mistake")
    try:
        structlog.get_logger("test").info(
            "outreach_recorded", phone="617-555-0142", Name="Zebulon Quixtable", channel="phone"
        )
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()  # the captured stream closes with this test

    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "{" in line]
    assert line["case_id"] == "referral-42" and line["channel"] == "phone"
    assert line["phi_dropped"] == ["Name", "note", "phone"]
    assert "555-0142" not in json.dumps(line) and "Zebulon" not in json.dumps(line)
