"""Fixtures for the share tests: a real local HTTP receiver, articles and endpoint configs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from config.model import EndpointBase, parse_endpoint
from worker.share import ShareArticle

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "share"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FIXED_NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Reply:
    """How the receiver answers the next request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every request and answers as told."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.reply = Reply()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                reply = receiver.reply
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/syndicate"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def respond(
        self,
        status: int = 200,
        body: bytes | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Set the answer to the next requests."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.reply = Reply(status, body, headers or {}, delay)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, shut down after the test."""
    rec = Receiver()
    rec.thread.start()
    try:
        yield rec
    finally:
        rec.server.shutdown()
        rec.server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def endpoint_config(data: dict[str, Any], env: dict[str, str] | None = None) -> EndpointBase:
    """A validated endpoint config; credentials are ``${VAR}`` references resolved from ``env``."""
    env = env or {}
    return parse_endpoint(data, lookup=env.get)


def webhook_config(url: str, secret: str = SECRET, **extra: Any) -> EndpointBase:
    """A validated webhook endpoint config whose secret comes from ``${HOOK_SECRET}``."""
    return endpoint_config(
        {"name": "partner-hook", "kind": "webhook", "url": url, "secret": "${HOOK_SECRET}", **extra},
        {"HOOK_SECRET": secret},
    )


def file_config(path: str | Path, **extra: Any) -> EndpointBase:
    """A validated file endpoint config."""
    return endpoint_config({"name": "archive", "kind": "file", "path": str(path), **extra})


@pytest.fixture
def article() -> ShareArticle:
    """A Romanian article with every field set."""
    return ShareArticle(
        article_id=42,
        url="https://stiri.example.ro/economie/2024/05/bursa-de-la-bucuresti-creste",
        title="Bursa de la București crește pentru a cincea zi consecutiv",
        summary="Indicele BET a câștigat 1,2% după ce investitorii au salutat rezultatele trimestriale ale "
        "companiilor energetice și ale băncilor, în ciuda incertitudinilor din zona euro.",
        source="stiri-ro",
        category="economie",
        tags=("Bursa", "piața de capital", "BET"),
        authors=("Ana Popescu", "Ion Ionescu"),
        published=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        image="https://stiri.example.ro/img/bvb.jpg",
        language="ro",
    )
