"""The payer sandbox on a free loopback port, for the package; rules are set per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from workers import dev, payer_sandbox


@pytest.fixture(scope="package")
def payer_url(tmp_path_factory) -> Iterator[str]:
    """The payer sandbox's FHIR base URL (http://127.0.0.1:<port>/fhir), data in memory."""
    port = dev.free_port()
    log = tmp_path_factory.mktemp("payer") / "payer.log"
    server = payer_sandbox.start_payer_sandbox(port, None, log)
    try:
        yield payer_sandbox.wait_for_payer_sandbox(port, server)
    finally:
        dev.stop(server)


@pytest.fixture(scope="package")
def sandbox(payer_url: str) -> Iterator[httpx.Client]:
    """The sandbox's test controls (/sandbox/...) and its FHIR API (/fhir/...)."""
    with httpx.Client(base_url=payer_url.removesuffix("/fhir"), timeout=15) as client:
        yield client
