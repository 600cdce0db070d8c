"""The worker serves Temporal SDK metrics for Prometheus when WORKER_METRICS_ADDRESS is set."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import eventually
from tests.processes import process_env
from workers import dev


def test_worker_metrics_are_scraped(temporal_address, tmp_path):
    port = dev.free_port()
    task_queue = f"metrics-{uuid.uuid4().hex[:8]}"
    env = process_env(temporal_address, tmp_path, task_queue) | {
        "WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
    }
    worker = dev.start_worker(env, tmp_path / "worker.log")
    try:

        def scrape() -> str | None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            return text if "temporal_" in text else None

        text = eventually(scrape, timeout=30)
    finally:
        dev.stop(worker)
    assert text, (tmp_path / "worker.log").read_text()[-2000:]
    assert 'service_name="temporal-core-sdk"' in text
