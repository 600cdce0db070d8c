"""A loopback endpoint that records the form POSTs made to it (Twilio's webhooks, as sent)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.loopback import serving


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FormReceiver:
    url: str
    posted: list[Posted] = field(default_factory=list)


@contextmanager
def form_receiver() -> Iterator[FormReceiver]:
    state = FormReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            form = dict(parse_qsl(raw, keep_blank_values=True))
            state.posted.append(Posted(self.path, dict(self.headers), form))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state
