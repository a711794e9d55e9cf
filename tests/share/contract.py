"""A scripted stand-in for a network's API on 127.0.0.1, fed with documented request/response pairs.

Used by the contract tests of networks no peer server can run for here (X, LinkedIn, Facebook,
Threads). Each fixture file under ``tests/fixtures/share/<kind>/`` holds one exchange taken from the
network's documentation: ``doc`` (where it comes from), ``request`` (method, path and the parts of
the headers, query and body that the documentation prescribes) and ``response`` (status, headers,
JSON body). :meth:`ContractServer.serve` queues the response; :func:`assert_request` checks what our
code actually sent against the documented request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "share"


@dataclass
class Exchange:
    """One queued answer for a (method, path)."""

    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Request:
    """One request the server got."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (one value per name)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def params(self) -> dict[str, str]:
        """The query string, one value per name."""
        return {k: v[0] for k, v in self.query.items()}


@dataclass
class ContractServer:
    """Answers each (method, path) from its queue; an unexpected request gets a 599 and is recorded."""

    requests: list[Request] = field(default_factory=list)
    queues: dict[tuple[str, str], list[Exchange]] = field(default_factory=dict)

    def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                server.requests.append(
                    Request(
                        self.command,
                        parts.path,
                        parse_qs(parts.query, keep_blank_values=True),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                queue = server.queues.get((self.command, parts.path))
                if queue:
                    reply = queue.pop(0) if len(queue) > 1 else queue[0]
                else:
                    reply = Exchange(599, b'{"unexpected": true}', {"Content-Type": "application/json"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Shut the server down."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue an answer for ``method path`` (the last queued one repeats)."""
        headers = dict(headers or {})
        if isinstance(body, bytes):
            raw = body
        elif body is None:
            raw = b""
        else:
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.queues.setdefault((method, path), []).append(Exchange(status, raw, headers))

    def serve(
        self, pair: dict[str, Any], values: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        """Queue the documented response of fixture ``pair`` (at its request path unless ``path``).

        ``{placeholder}`` strings in the response are filled from ``values``.
        """
        request, response = pair["request"], fill(pair["response"], values or {})
        self.answer(
            request["method"],
            path or request["path"],
            response["status"],
            response.get("json", response.get("body", "").encode()),
            response.get("headers"),
        )

    def sent(self, method: str, path: str) -> list[Request]:
        """The requests received for ``method path``."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


def running() -> Iterator[ContractServer]:
    """Yield a started contract server and stop it afterwards (the body of each module's fixture)."""
    server = ContractServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def load(kind: str, name: str) -> dict[str, Any]:
    """The fixture ``tests/fixtures/share/<kind>/<name>.json``."""
    data: dict[str, Any] = json.loads((FIXTURES / kind / f"{name}.json").read_text(encoding="utf-8"))
    return data


def error_fixtures(kind: str) -> list[str]:
    """Names of the documented error answers of ``kind`` (``errors/*.json``)."""
    return sorted(f"errors/{p.stem}" for p in (FIXTURES / kind / "errors").glob("*.json"))


def fill(value: Any, values: dict[str, str]) -> Any:
    """``value`` with ``{name}`` placeholders in its strings replaced from ``values`` (recursively)."""
    if isinstance(value, str):
        for name, real in values.items():
            value = value.replace("{" + name + "}", real)
        return value
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


def assert_request(got: Request, documented: dict[str, Any], values: dict[str, str] | None = None) -> None:
    """``got`` has the documented method, path, headers, query and body.

    ``{placeholder}`` strings in the documented headers, query and form are filled from ``values``
    (the test's fake tokens); a documented ``json`` body must equal the sent one exactly.
    """
    values = values or {}
    assert got.method == documented["method"]
    assert got.path == documented["path"]
    for name, value in documented.get("headers", {}).items():
        assert got.headers.get(name.lower()) == fill(value, values), name
    if "query" in documented:
        assert got.params() == fill(documented["query"], values)
    if "form" in documented:
        assert got.form() == fill(documented["form"], values)
    if "json" in documented:
        assert got.json() == fill(documented["json"], values)
