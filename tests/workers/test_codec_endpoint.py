"""The dev server's Web UI is told where the codec server is, as `make run` starts it."""

from __future__ import annotations

import asyncio
import time

import httpx

from workers import dev


def test_the_dev_server_s_ui_decodes_through_the_codec_server(tmp_path):
    port, ui = dev.free_port(), dev.free_port()
    endpoint = "http://127.0.0.1:8000/codec"
    server = dev.start_temporal(None, port, ui, tmp_path / "temporal.log", codec_endpoint=endpoint)
    try:
        asyncio.run(dev.wait_for_temporal(f"127.0.0.1:{port}"))
        deadline = time.monotonic() + 30
        while True:
            try:
                settings = httpx.get(f"http://127.0.0.1:{ui}/api/v1/settings", timeout=5).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    finally:
        dev.stop(server)
    assert settings["Codec"]["Endpoint"] == endpoint
