"""Real receivers on 127.0.0.1 for the outbox and CLI share tests: a webhook receiver, a slow proxy."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class Answer:
    """One scripted answer."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST and answers with the next scripted answer."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.default = Answer()
        self.received: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = owner.script.pop(0) if owner.script else owner.default
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.body if answer.body is not None else {"id": f"remote-{len(owner.received)}"}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/syndicate"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def titles(self) -> list[str]:
        """The article titles received, in order."""
        return [json.loads(body)["data"]["title"] for _, body in self.received]

    def ids(self) -> list[str]:
        """The webhook-id of every request, in order."""
        return [headers["webhook-id"] for headers, _ in self.received]


class SlowProxy:
    """A network that is slow to post: forwards every request to ``upstream`` (a real peer, such as
    mastodon-mock), holding each POST to ``path`` for ``delay`` seconds *before* forwarding it, so
    the post appears on the peer ``delay`` seconds after it was sent, whether or not the poster is
    still waiting. With ``swallow`` the first such POST is never forwarded at all (it was lost on the
    way), and the connection is held until the poster hangs up. Other requests pass at once.
    """

    def __init__(self, upstream: str, path: str, delay: float, *, swallow: bool = False) -> None:
        self.upstream, self.path, self.delay, self.swallow = upstream, path, delay, swallow
        self.posts: list[float] = []  # when each held POST arrived (monotonic)
        self.forwarded = threading.Event()  # a held POST reached the peer
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                if self.command == "POST" and self.path.startswith(owner.path):
                    with owner.lock:
                        owner.posts.append(time.monotonic())
                        first = len(owner.posts) == 1
                    if owner.swallow and first:
                        self.rfile.read()  # until the poster gives up and closes the connection
                        return
                    time.sleep(owner.delay)
                answer = requests.request(
                    self.command, owner.upstream + self.path, headers=headers, data=body, timeout=30
                )
                if self.command == "POST" and self.path.startswith(owner.path):
                    owner.forwarded.set()
                try:
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = _handle  # PUT: Mastodon's edits

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
