"""End to end with no mocks in the path.

A real site on 127.0.0.1, a real Redis, real Celery worker and beat processes, the real HTTP app and
a real webhook receiver: the three articles must reach both feeds (parsed back with feedparser) and
the receiver must get exactly one correctly signed payload per article, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest
import redis
import requests
import standardwebhooks

from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer, Syndicate, free_port, wait_port

pytestmark = pytest.mark.integration

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
SECRET = "whsec_" + base64.b64encode(b"end-to-end-test-secret-32-bytes!").decode()
TOKEN = "e2e-token"
TITLES = {
    "Cluj IT Cluster and the Rawabi Tech Hub establish international partnership",
    "Cluj IT Cluster passes 65 members",
    "Rawabi opens a technology training institute",
}


class Receiver(BaseHTTPRequestHandler):
    """Records every webhook delivery."""

    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        answer = json.dumps({"id": f"remote-{len(self.received)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def site() -> Iterator[str]:
    """The fixture site served as static files."""
    with HTTPTestServer(root=SITE) as server:
        yield server.base_url


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A webhook receiver and the list of what it received."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("R", (Receiver,), {"received": received})
    server = _serve(ThreadingHTTPServer(("127.0.0.1", 0), handler))
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def _write_config(path: Path, site: str, hook: str) -> None:
    path.write_text(
        f"""
api:
  token: ${{E2E_API_TOKEN}}
fetch:
  allow_hosts: ["127.0.0.1"]
  timeout: 10s
sources:
  - name: cluster
    kind: listing
    url: {site}/
    schedule: 3s
    options:
      link_selector: "a.post-link"
feeds:
  - name: all
    title: All partner news
  - name: it
    title: IT Systems
    categories: ["IT Systems"]
endpoints:
  - name: partner-hook
    kind: webhook
    url: {hook}
    secret: ${{E2E_WEBHOOK_SECRET}}
    back_catalogue: true   # the site's stories are all found by the first crawl
    story_window: 0
""",
        encoding="utf-8",
    )


def _entries(url: str) -> list[feedparser.FeedParserDict]:
    resp = requests.get(url, timeout=5)
    if resp.status_code != 200:
        return []
    return list(feedparser.parse(resp.content).entries)


def test_pipeline_end_to_end(
    tmp_path: Path,
    database_url: str,
    redis_server: RedisServer,
    site: str,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    hook_url, received = receiver
    redis_url = redis_server.url.rsplit("/", 1)[0] + ("/1" if database_url.startswith("sqlite") else "/2")
    redis.Redis.from_url(redis_url).flushdb()
    _write_config(tmp_path / "syndicate.yaml", site, hook_url)
    port = free_port()
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "E2E_WEBHOOK_SECRET": SECRET,
            "E2E_API_TOKEN": TOKEN,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    try:
        syn.start("worker", "worker", "--concurrency", "2")
        syn.start("beat", "beat")
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        base = f"http://127.0.0.1:{port}"

        deadline = time.monotonic() + 120
        rss: list[feedparser.FeedParserDict] = []
        while time.monotonic() < deadline:
            rss = _entries(f"{base}/feeds/all.rss")
            if len(rss) >= 3 and len(received) >= 3:
                break
            time.sleep(0.5)
        assert {e.title for e in rss} == TITLES, syn.logs()

        for fmt in ("rss", "atom"):
            resp = requests.get(f"{base}/feeds/all.{fmt}", timeout=5)
            parsed = feedparser.parse(resp.content)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            assert {e.title for e in parsed.entries} == TITLES
            assert all(e.link.startswith(site + "/news/") for e in parsed.entries)
            assert "Share this article" not in resp.text
            again = requests.get(
                f"{base}/feeds/all.{fmt}", headers={"If-None-Match": resp.headers["ETag"]}, timeout=5
            )
            assert again.status_code == 304
            assert again.content == b""
        it_feed = feedparser.parse(requests.get(f"{base}/feeds/it.atom", timeout=5).content)
        assert {e.title for e in it_feed.entries} == TITLES

        # Let beat crawl the site a few more times: nothing may be shared twice.
        time.sleep(8)
        assert len(received) == 3, [h.get("webhook-id") for h, _ in received]
        verifier = standardwebhooks.Webhook(SECRET)
        titles = set()
        for headers, body in received:
            payload = verifier.verify(body, headers)
            titles.add(payload["data"]["title"])
        assert titles == TITLES
        assert len({h["webhook-id"] for h, _ in received}) == 3

        # A pushed article flows through the same pipeline.
        pushed = requests.post(
            f"{base}/api/articles",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={
                "url": f"{site}/news/pushed-story.html",
                "title": "Pushed: the clusters sign a second agreement",
                "content_html": "<p>The two clusters signed a second agreement on mentorship.</p>",
                "published": "2019-04-01T10:00:00Z",
                "category": "IT Systems",
            },
            timeout=5,
        )
        assert pushed.status_code == 202, pushed.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_entries(f"{base}/feeds/all.atom")) < 4:
            time.sleep(0.5)
        titles_now = {e.title for e in _entries(f"{base}/feeds/all.atom")}
        assert "Pushed: the clusters sign a second agreement" in titles_now, syn.logs()

        status = syn.run("status", "--json")
        assert status.returncode == 0, status.stderr
        snap = json.loads(status.stdout)
        assert snap["articles"]["ready"] == 4
        cluster = next(s for s in snap["sources"] if s["name"] == "cluster")
        assert cluster["last_error"] is None
        assert cluster["crawls"] >= 3  # beat kept crawling at the source's own 3 s interval
    finally:
        syn.stop()
