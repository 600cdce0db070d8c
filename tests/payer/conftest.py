"""The payer sandbox's fixtures live in tests/conftest.py; here, its test controls by the short
name these tests use."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="package")
def sandbox(payer_sandbox_http: httpx.Client) -> httpx.Client:
    return payer_sandbox_http
