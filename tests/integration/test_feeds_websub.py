"""The WebSub loop against the real Flask-WebSub 0.4.1 hub (../shared/peers/websub-hub), no mocks.

A subscriber (a real HTTP server here) subscribes to our feed's topic at the hub, which verifies its
intent; an article pushed through the API goes through a real ``syndicate worker`` (process, render,
publish, then the ``publish_websub`` task); the hub fetches the topic from the real app (it only
delivers when the answer carries ``Link: rel="hub"`` and ``rel="self"``) and delivers the new feed to
the subscriber, signed with the subscription's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
import requests
import yaml

from tests.support.services import RedisServer, Syndicate, free_port, wait_port

pytestmark = pytest.mark.integration

HUB_SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "peers" / "websub-hub" / "hub_server.py"
TOKEN = "websub-token"
SECRET = "subscriber-secret-123"


class Subscriber(BaseHTTPRequestHandler):
    """Answers the hub's intent verification and records deliveries."""

    verified: list[dict[str, list[str]]]
    deliveries: list[tuple[dict[str, str], bytes]]

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.verified.append(query)
        challenge = query.get("hub.challenge", [""])[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(challenge)))
        self.end_headers()
        self.wfile.write(challenge)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """The Flask-WebSub hub as a subprocess on a free port; yields its endpoint URL."""
    pytest.importorskip("flask_websub")
    if not HUB_SCRIPT.exists():
        pytest.skip(f"{HUB_SCRIPT} is missing")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HUB_SCRIPT), str(port), str(tmp_path / "hub.sqlite3")],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "hub.log", "wb"),
    )
    try:
        wait_port(port, 20, proc)
        yield f"http://127.0.0.1:{port}/hub"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def subscriber() -> Iterator[tuple[str, type[Subscriber]]]:
    """The subscriber's callback server; yields its URL and the handler class holding what it saw."""
    handler = type("Recording", (Subscriber,), {"verified": [], "deliveries": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", handler
    finally:
        server.shutdown()
        server.server_close()


def wait_for(check: object, timeout: float, what: str, logs: object = None) -> None:
    """Poll ``check()`` until it is true (no assertion on how long it took)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s\n{logs() if callable(logs) else ''}")


def test_subscribe_publish_delivery(
    tmp_path: Path, redis_server: RedisServer, hub: str, subscriber: tuple[str, type[Subscriber]]
) -> None:
    callback, recorded = subscriber
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    topic = f"{base}/feeds/all.atom"
    (tmp_path / "syndicate.yaml").write_text(
        yaml.safe_dump(
            {
                "api": {"token": "${WS_TOKEN}"},
                "feeds": [{"name": "all", "title": "All partner news"}],
                "websub": {"hub": hub},
            }
        ),
        encoding="utf-8",
    )
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'ws.db'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/4",
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "SYNDICATE_PUBLIC_URL": base,
            "WS_TOKEN": TOKEN,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2])
            + os.pathsep
            + os.environ.get("PYTHONPATH", ""),
        },
    )
    import redis

    redis.Redis(port=redis_server.port, db=4).flushdb()
    assert syn.run("migrate").returncode == 0
    try:
        syn.start("worker", "worker", "--concurrency", "2")
        syn.start("web", "web")
        wait_port(port, 30)

        subscribed = requests.post(
            hub,
            data={
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": callback,
                "hub.secret": SECRET,
                "hub.lease_seconds": "3600",
            },
            timeout=10,
        )
        assert subscribed.status_code == 202, subscribed.text
        wait_for(lambda: recorded.verified, 10, "the hub's intent verification", syn.logs)
        assert recorded.verified[0]["hub.mode"] == ["subscribe"]
        assert recorded.verified[0]["hub.topic"] == [topic]

        pushed = requests.post(
            f"{base}/api/articles",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={
                "url": "https://partner.example/news/websub",
                "title": "Hub delivers the partnership story",
                "content_html": "<p>The cluster and the hub signed an agreement on training engineers.</p>",
                "published": "2024-04-02T09:00:00Z",
            },
            timeout=10,
        )
        assert pushed.status_code == 202, pushed.text

        def delivered_story() -> bool:
            return any(b"Hub delivers the partnership story" in body for _, body in recorded.deliveries)

        wait_for(delivered_story, 30, "a delivery carrying the new article", syn.logs)
    finally:
        syn.stop()

    headers, body = next((h, b) for h, b in recorded.deliveries if b"Hub delivers the partnership story" in b)
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature"] == f"sha256={expected}"
    assert f'<{hub}>; rel="hub"' in headers["link"] and f'<{topic}>; rel="self"' in headers["link"]
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    assert [e.title for e in parsed.entries] == ["Hub delivers the partnership story"]
