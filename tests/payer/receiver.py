"""A small HTTP endpoint on loopback that records what is POSTed to it (a subscriber)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import serving


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    failures: int = 0  # answer the next n posts with 503

    def bodies(self) -> list[Any]:
        return [body for _, body in self.received]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.failures:
                state.failures -= 1
                self.send_response(503)
            else:
                state.received.append((dict(self.headers), body))
                self.send_response(202)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = f"{url}/notifications"
        yield state
