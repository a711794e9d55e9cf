"""The seed scenario through real workers: one partnership reported by four partners is one story.

Our seed (../shared/seed/README.md): the Cluj IT Cluster and the Rawabi Tech Hub partnership was written
up by the Rawabi Foundation (28 January 2019), a tech-news site (4 March) and the cluster itself
(6 March); here a Romanian partner site writes it up too (5 March). Beside them, the cluster's own
other news: a piece on Cluj's IT sector published the same days, naming the same cluster, and the same
two partners signing a second agreement a year later. Five partner sources on one real HTTP server,
real Redis, real Celery worker and beat processes, the real web app, on SQLite and PostgreSQL.

What the hub's users must see: the four write-ups are one story (``syndicate story list --json``), one
entry in the merged feed with the other three as "also reported by", one post per story on each
endpoint, the cluster's own version posted where no language is asked for (its source has the highest
priority) and the Romanian version on an endpoint that asks for Romanian; the two other pieces stay
stories of their own. Nothing is posted twice while beat keeps crawling.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import pytest
import redis
import requests

from tests.support.httpserver import HTTPTestServer, Response
from tests.support.services import RedisServer, Syndicate, free_port, wait_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "worker" / "demo"
PAGES = ROOT / "tests" / "fixtures" / "stories-site"
# source name -> (priority, [(path on the site, page file)])
SOURCES: dict[str, tuple[int, list[tuple[str, Path]]]] = {
    "cluj-cluster": (
        10,
        [
            ("/cluj/2019/partnership.html", DEMO / "cluj-it-cluster-rawabi-tech-hub-partnership.html"),
            ("/cluj/2019/it-sector-grows.html", PAGES / "cluj-it-sector-grows.html"),
            ("/cluj/2020/second-agreement.html", PAGES / "cluj-rawabi-data-centre-2020.html"),
        ],
    ),
    "rawabi": (0, [("/rawabi/news/memorandum.html", DEMO / "rawabi-foundation-signs-cluj-memorandum.html")]),
    "technews": (0, [("/technews/tech-bridge.html", DEMO / "romanian-palestinian-tech-bridge.html")]),
    "cluj-ro": (0, [("/ro/parteneriat.html", PAGES / "parteneriat-cluj-rawabi.html")]),
}
PARTNERSHIP = {
    "/cluj/2019/partnership.html",
    "/rawabi/news/memorandum.html",
    "/technews/tech-bridge.html",
    "/ro/parteneriat.html",
}
SEPARATE = {"/cluj/2019/it-sector-grows.html", "/cluj/2020/second-agreement.html"}
WINDOW = 30  # seconds every endpoint waits after a story's first version (story_window)


def _page(path: Path) -> Response:
    # The demo pages name the demo app's own address (og:url, rel=canonical); here they live on this server.
    html = re.sub(rb'<meta property="og:url"[^>]*>\n?|<link rel="canonical"[^>]*>\n?', b"", path.read_bytes())
    return Response(200, html, {"Content-Type": "text/html; charset=utf-8"})


def _listing(links: list[str]) -> Response:
    items = "".join(f'<li><a class="story" href="{link}">{link}</a></li>' for link in links)
    html = f"<!doctype html><html><body><ul>{items}</ul></body></html>".encode()
    return Response(200, html, {"Content-Type": "text/html; charset=utf-8"})


@pytest.fixture
def site() -> Iterator[HTTPTestServer]:
    """Four partner sites (one listing each) on one server, with a robots.txt that allows us."""
    server = HTTPTestServer(root=None).start()
    server.route("/robots.txt", Response(200, b"User-agent: *\nAllow: /\n", {"Content-Type": "text/plain"}))
    for name, (_, pages) in SOURCES.items():
        server.route(f"/{name}/", _listing([path for path, _ in pages]))
        for path, file in pages:
            server.route(path, _page(file))
    yield server
    server.stop()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(json.loads(body))
        answer = json.dumps({"id": f"remote-{len(self.received)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver (the Romanian partner's newsroom) and what it received."""
    received: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("R", (_Receiver,), {"received": received}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def _config(site: HTTPTestServer, hook: str, shares: Path) -> str:
    sources = "".join(
        f"""
  - name: {name}
    kind: listing
    url: {site.url(f"/{name}/")}
    schedule: 4s
    priority: {priority}
    options:
      link_selector: "a.story"
"""
        for name, (priority, _) in SOURCES.items()
    )
    return f"""
fetch:
  allow_hosts: ["127.0.0.1"]
  timeout: 10s
  host_interval: 0.2s
sources:{sources}
feeds:
  - name: all
    title: All partner news
endpoints:
  - name: archive
    kind: file
    path: {shares}
    back_catalogue: true
    story_window: {WINDOW}s
  - name: ro-newsroom
    kind: webhook
    url: {hook}
    secret: ${{STORIES_HOOK_SECRET}}
    languages: [ro]
    back_catalogue: true
    story_window: {WINDOW}s
"""


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_one_partnership_from_four_partners_is_one_story_one_entry_one_post_per_endpoint(
    tmp_path: Path,
    database_url: str,
    redis_server: RedisServer,
    site: HTTPTestServer,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    hook, received = receiver
    redis_url = redis_server.url.rsplit("/", 1)[0] + ("/3" if database_url.startswith("sqlite") else "/4")
    redis.Redis.from_url(redis_url).flushdb()
    shares = tmp_path / "shares.jsonl"
    (tmp_path / "syndicate.yaml").write_text(_config(site, hook, shares), encoding="utf-8")
    port = free_port()
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "SYNDICATE_API_TOKEN": "stories-token",
            "STORIES_HOOK_SECRET": "whsec_c3Rvcmllcy1lbmQtdG8tZW5kLXNlY3JldC0zMi1ieXRlcyE=",
        },
    )
    assert syn.run("migrate").returncode == 0
    try:
        syn.start("worker", "worker", "--concurrency", "2")
        syn.start("beat", "beat")
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        base = f"http://127.0.0.1:{port}"

        # Every page is gathered and every story posted on the archive (three stories).
        deadline = time.monotonic() + 90 + WINDOW
        while time.monotonic() < deadline and len(_lines(shares)) < 3:
            time.sleep(0.5)
        listed = syn.run("story", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        stories = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        by_paths = {frozenset(_path(a["url"]) for a in s["articles"]): s for s in stories}
        expected = {frozenset(PARTNERSHIP), *(frozenset({p}) for p in SEPARATE)}
        assert set(by_paths) == expected, (stories, syn.logs())
        story = by_paths[frozenset(PARTNERSHIP)]
        assert {a["source"] for a in story["articles"]} == {"cluj-cluster", "rawabi", "technews", "cluj-ro"}
        assert {a["language"] for a in story["articles"]} == {"en", "ro"}

        # One entry in the merged feed: the cluster's own version, the three others "also reported by".
        atom = feedparser.parse(requests.get(f"{base}/feeds/all.atom", timeout=5).content)
        assert len(atom.entries) == 3, [e.link for e in atom.entries]
        [entry] = [e for e in atom.entries if _path(e.link) in PARTNERSHIP]
        assert _path(entry.link) == "/cluj/2019/partnership.html"
        related = {_path(link.href) for link in entry.links if link.rel == "related"}
        assert related == PARTNERSHIP - {"/cluj/2019/partnership.html"}
        feed_json = requests.get(f"{base}/feeds/all.json", timeout=5).json()
        [item] = [i for i in feed_json["items"] if _path(i["url"]) in PARTNERSHIP]
        also = {_path(v["url"]) for v in item["_syndicate"]["also_reported_by"]}
        assert also == related
        assert "Also reported by" in item["content_html"]

        # One post per story on the archive, with the highest-priority version of the partnership.
        posted = [_path(line["data"]["url"]) for line in _lines(shares)]
        assert sorted(posted) == sorted(["/cluj/2019/partnership.html", *SEPARATE]), posted
        # The Romanian newsroom asks for Romanian: the one story it gets carries the Romanian version.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not received:
            time.sleep(0.5)
        assert [_path(r["data"]["url"]) for r in received] == ["/ro/parteneriat.html"], received

        # Beat keeps crawling (every 4 s): nothing more is posted, the later versions were skipped.
        time.sleep(10)
        assert len(_lines(shares)) == 3 and len(received) == 1
        status = json.loads(syn.run("status", "--json").stdout)
        skipped = json.dumps(status)
        assert "same_story" in skipped, skipped[:2000]
    finally:
        syn.stop()
