"""The app database's own tests run on SQLite (the default) and on PostgreSQL (production's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.postgres import new_database

on_both_databases = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty app database of that kind ("sqlite" or "postgresql")."""
    if kind == "postgresql":
        return new_database(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'app.db'}"
