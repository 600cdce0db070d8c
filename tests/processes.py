"""The configuration a test gives the worker and API processes it starts."""

from __future__ import annotations

from pathlib import Path


def process_env(temporal_address: str, home: Path, task_queue: str) -> dict[str, str]:
    """Temporal, a task queue of the test's own, and an app database and data folder in `home`;
    add more settings with `|`."""
    return {
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": f"sqlite:///{home / 'app.db'}",
        "DATA_DIR": str(home),
    }
