"""One way to reach Temporal, for the worker, the API, the CLI and the tests."""

from __future__ import annotations

import dataclasses
import os

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from workers.codec import EncryptionCodec
from workers.settings import Settings, get_settings
from workflows.care import search

DEFAULT_ADDRESS = "127.0.0.1:7233"


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models as JSON, every payload encrypted under the settings' keyring, and failure
    messages and stack traces moved into (encrypted) payloads too: what a case carries never
    reaches Temporal's database in plain text."""
    keyring = settings.keyring  # refuses the development key, or no encryption, in production
    if not settings.payload_encryption:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    runtime: Runtime | None = None,
    converter: DataConverter | None = None,
) -> Client:
    """Connect using Temporal's standard settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TEMPORAL_TLS_*), so the same code reaches a dev server, a cluster or Cloud.
    Payloads are encrypted with the keyring from the settings unless `converter` says otherwise."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS))
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(
        **config, data_converter=converter or data_converter(get_settings()), runtime=runtime
    )


def prometheus_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime exposing the SDK's worker metrics for Prometheus at `bind_address`."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def register_search_attributes(client: Client) -> None:
    """Register the work-queue search attributes if the namespace lacks them (idempotent)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in search.ALL
        if key.name not in known
    }
    if not missing:
        return
    try:
        await _add(client, missing)
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        # Some are there already (the test server cannot list them, or another worker added
        # them meanwhile): add the rest one by one, taking "already exists" as done.
        for name, kind in missing.items():
            try:
                await _add(client, {name: kind})
            except RPCError as refused:
                if refused.status != RPCStatusCode.ALREADY_EXISTS:
                    raise


async def _add(client: Client, attributes: dict[str, IndexedValueType.ValueType]) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=client.namespace, search_attributes=attributes)
    )
