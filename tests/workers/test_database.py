"""The app database: processes that start together (the worker, API replicas) migrate it safely."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

MIGRATE = "import sys; from workers.database import make_engine; make_engine(sys.argv[1])"
ROOT = Path(__file__).resolve().parents[2]


def test_processes_starting_together_migrate_one_at_a_time(tmp_path):
    database = tmp_path / "app.db"
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, f"sqlite:///{database}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in starting]
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], [err[-400:] for _, err in outcomes]
    with sqlite3.connect(database) as connection:
        [(version,)] = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    newest = max(path.name.split("_")[0] for path in (ROOT / "migrations/versions").glob("0*.py"))
    assert version == newest
    assert {"ledger_entry", "case_summary", "access_log", "trigger_state"} <= tables
