"""The app database: processes that start together (the worker, API replicas) migrate it safely,
on SQLite and on PostgreSQL; `followthrough migrate` does it as a step of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from tests.postgres import database_url
from workers.cli import app
from workers.database import make_engine, schema_version
from workers.settings import get_settings

MIGRATE = "import sys; from workers.database import make_engine; make_engine(sys.argv[1])"
ROOT = Path(__file__).resolve().parents[2]
NEWEST = max(path.name.split("_")[0] for path in (ROOT / "migrations/versions").glob("0*.py"))
TABLES = {
    "ledger_entry",
    "case_summary",
    "access_log",
    "trigger_state",
    "staff_notice",
    "idempotent_request",
    "outbound_message",
    "messaging_consent",
    "sms_conversation",
    "inbound_message",
    "portal_outbox",
}


def plain(url: str) -> str:
    """The URL as a deployment writes it: `postgresql://`, no driver named."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_starting_together_migrate_one_at_a_time(kind, request, tmp_path):
    url = plain(database_url(kind, request, tmp_path))
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in starting]
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], [err[-400:] for _, err in outcomes]
    engine = make_engine(url, migrate=False)
    assert schema_version(engine) == NEWEST
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrate_command_brings_an_empty_database_to_the_newest_schema(
    kind, request, tmp_path, monkeypatch
):
    url = plain(database_url(kind, request, tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"schema {NEWEST}" in result.output
    engine = make_engine(url, migrate=False)
    assert schema_version(engine) == NEWEST
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
