"""A throwaway PostgreSQL server for the tests and the bench: Debian's binaries (`make test`
installs them), `initdb` into a temporary folder, a free loopback port; no system service."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from workers import dev

SUPERUSER = "followthrough"


def binary(name: str) -> str | None:
    """`initdb` and `postgres` from PATH, or from Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _as_server_user() -> dict:
    """PostgreSQL refuses to run as root: when we are root, run it as Debian's `postgres` user."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yields the URL of its `postgres` database."""
    initdb, postgres = binary("initdb"), binary("postgres")
    if not (initdb and postgres):
        raise RuntimeError("PostgreSQL not found: run 'make test', which installs it")
    home = Path(tempfile.mkdtemp(prefix="followthrough-pg-"))
    run_as = _as_server_user()
    if run_as:
        owner = pwd.getpwnam(run_as["user"])
        os.chown(home, owner.pw_uid, owner.pw_gid)
    data = home / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        **run_as,
    )
    port = dev.free_port()
    # Durability settings off: a test server that loses its data on a crash loses nothing.
    log = open(home / "postgres.log", "wb")  # noqa: SIM115 (closed when the server stops)
    server = subprocess.Popen(
        [postgres, "-D", str(data), "-p", str(port), "-k", str(home)]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        + ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        **run_as,
    )
    url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
    try:
        _wait_until_accepting(port, server)
        yield url
    finally:
        server.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _wait_until_accepting(port: int, server: subprocess.Popen, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres"):
                return
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
