"""The followthrough command: tokens it mints are accepted by the API's own check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.auth import InvalidToken, read_token
from workers.cli import app
from workers.settings import Settings
from workflows.care.models import Role


def test_token_command_mints_a_token_the_api_accepts(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-of-thirty-two-bytes!")
    from workers.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(
        app, ["token", "--user", "cora", "--role", "supervisor", "--team", "cardiology"]
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    actor = read_token(
        Settings(jwt_secret="cli-test-secret-of-thirty-two-bytes!"), result.output.strip()
    )
    assert (actor.user_id, actor.role, actor.team) == ("cora", Role.SUPERVISOR, "cardiology")
    with pytest.raises(InvalidToken):
        read_token(
            Settings(jwt_secret="another-secret-of-thirty-two-bytes!!"), result.output.strip()
        )


def test_coordinator_token_without_team_is_refused():
    settings = Settings(jwt_secret="s" * 32)
    from api.auth import mint_token

    with pytest.raises(InvalidToken, match="needs a team"):
        read_token(settings, mint_token(settings, user="x", role=Role.COORDINATOR))


def test_production_refuses_the_development_secret(monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(environment="production")
