"""The `followthrough` command: dev (everything at once), worker, api, migrate,
register-search-attributes, token."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from workers import logs
from workers.settings import get_settings
from workflows.care.models import Role
from workflows.care.queues import QueueKind

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Followthrough: care cases that run until care actually happens.",
)


@app.command()
def dev(seed: Annotated[bool, typer.Option(help="Seed demo cases on first start")] = True) -> None:
    """Start Temporal (persisted in .data/), a worker and the API on loopback; Ctrl-C stops all."""
    from workers.dev import run_dev

    raise typer.Exit(run_dev(get_settings(), seed=seed))


def _queue_kinds(value: str) -> list[QueueKind]:
    try:
        return [QueueKind(kind.strip()) for kind in value.split(",") if kind.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"name kinds among {', '.join(QueueKind)}, separated by commas"
        ) from None


@app.command()
def worker(
    queues: Annotated[
        str,
        typer.Option(
            help="Which task queues to poll: workflows, ehr, messaging (comma-separated)",
        ),
    ] = ",".join(QueueKind),
) -> None:
    """Run a worker against TEMPORAL_ADDRESS: every task queue, or the kinds named."""
    from workers.worker import serve

    kinds = _queue_kinds(queues)
    if not kinds:
        raise typer.BadParameter("name at least one kind of queue", param_hint="--queues")
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_json)
    serve(settings, kinds)


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """Serve the API (and its docs at /docs)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        access_log=False,
        # SIGTERM: stop accepting connections, let requests under way finish within the grace.
        timeout_graceful_shutdown=settings.api_shutdown_grace_seconds,
    )


@app.command()
def migrate() -> None:
    """Bring the app database (DATABASE_URL) to the newest schema, then exit.

    The worker and the API migrate at start as well; a deployment that migrates as a step of its
    own runs this first."""
    from workers.database import make_engine, schema_version

    engine = make_engine(get_settings().database_url)
    typer.echo(f"app database at schema {schema_version(engine)}")
    engine.dispose()


@app.command("register-search-attributes")
def register_search_attributes() -> None:
    """Register the work queues' search attributes in TEMPORAL_NAMESPACE (idempotent), then exit.

    Workers do it at start too; a deployment that prepares Temporal first runs this."""
    from workers.client import connect
    from workers.client import register_search_attributes as register

    async def connect_and_register() -> None:
        await register(await connect())

    asyncio.run(connect_and_register())
    typer.echo("search attributes registered")


@app.command()
def token(
    user: Annotated[str, typer.Option(help="User id")],
    role: Annotated[Role, typer.Option(help="Role")] = Role.COORDINATOR,
    team: Annotated[str | None, typer.Option(help="Team (coordinators, supervisors)")] = None,
) -> None:
    """Print a development JWT for calling the API."""
    from api.auth import mint_token

    if role == Role.SYSTEM:
        raise typer.BadParameter("system is not a role a person can hold", param_hint="--role")
    typer.echo(mint_token(get_settings(), user=user, role=role, team=team))


if __name__ == "__main__":
    app()
