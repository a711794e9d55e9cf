"""Polite and safe fetching end to end, on real servers whose request logs the tests read.

- ``Crawl-delay`` holds between requests sent by TWO separate worker processes sharing a real
  Redis (each process has its own Fetcher; a refused one waits the ``retry_after`` it was given,
  as a rescheduled task would), from their very first requests, robots.txt included; the spacing
  is measured from the server's request log.
- A server that drips its headers (one byte per 0.2 s, never tripping the 0.5 s read timeout) or
  its body is cut off at the request's deadline with a clear error.
- The SSRF table through every fetch path of the Fetcher: direct, redirect hops, robots.txt, and
  ingest fetches, which never reach the app's, Flower's or Redis's port even though
  ``allow_hosts`` admits the host; an allowed host on another port is refused.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker.errors import BlockedURL, TransientFetchError
from worker.fetch import Fetcher
from worker.ssrf import own_service_rules

ROOT = Path(__file__).resolve().parents[2]
CRAWL_DELAY = 0.4


class TimedSite:
    """An HTTP server on 127.0.0.1 that logs (arrival time, path) of every request."""

    def __init__(self, robots: bytes) -> None:
        self.log: list[tuple[float, str]] = []
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    owner.log.append((time.time(), self.path))
                body = robots if self.path == "/robots.txt" else b"<html><body><p>story</p></body></html>"
                kind = "text/plain" if self.path == "/robots.txt" else "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


WORKER = """
import json, sys, time
import redis
from config.model import FetchPolicy
from worker.errors import HostBusy
from worker.fetch import Fetcher

port, redis_url, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
policy = FetchPolicy(allow_hosts=[f"127.0.0.1:{port}"], timeout=5.0)
fetcher = Fetcher(policy, redis=redis.Redis.from_url(redis_url))
done, busy = 0, 0
while done < count:
    try:
        fetcher.get(f"http://127.0.0.1:{port}/{name}/{done}")
        done += 1
    except HostBusy as exc:  # a task would be rescheduled with this countdown
        busy += 1
        time.sleep(exc.retry_after)
print(json.dumps({"done": done, "busy": busy}))
"""


def test_crawl_delay_holds_across_two_worker_processes(redis_server: RedisServer) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    site = TimedSite(b"User-agent: *\nCrawl-delay: %.1f\nDisallow: /never/\n" % CRAWL_DELAY)
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(site.port), redis_server.url, name, "5"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in ("a", "b")
        ]
        results = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    finally:
        site.close()
    assert [r["done"] for r in results] == [5, 5]
    paths = [path for _, path in site.log]
    assert paths.count("/robots.txt") == 1, "one robots.txt for both processes (shared in Redis)"
    assert {p.split("/")[1] for p in paths if p != "/robots.txt"} == {"a", "b"}  # both really fetched
    times = [moment for moment, _ in site.log]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 11
    # A turn is given back after the answer came, so the next request cannot arrive sooner than one
    # interval after the previous one did, however late that one left after its grant (the first
    # fetch of a process spends 0.2-0.3 s in lazy imports in between). The slack is Redis's ms clock.
    assert min(gaps) >= CRAWL_DELAY - 0.005, gaps
    assert sum(r["busy"] for r in results) > 0  # the two really competed


class DrippingServer:
    """A raw socket server that sends a response's headers (or body) one byte every ``pause`` seconds."""

    def __init__(self, pause: float, drip_headers: bool) -> None:
        self.pause = pause
        self.drip_headers = drip_headers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        """The URL of the dripping resource."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/drip"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"p" * 200 + b"\r\n"
        with conn:
            conn.recv(65536)
            try:
                if self.drip_headers:
                    for byte in head:
                        if self.stop.wait(self.pause):
                            return
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(head + b"Content-Length: 400\r\n\r\n")
                    for _ in range(400):
                        if self.stop.wait(self.pause):
                            return
                        conn.sendall(b"x")
            except OSError:
                return

    def close(self) -> None:
        """Stop and close."""
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("drip_headers", [True, False], ids=["slow-headers", "slow-body"])
def test_a_dripping_server_is_cut_off_at_the_deadline(drip_headers: bool) -> None:
    server = DrippingServer(pause=0.2, drip_headers=drip_headers)
    policy = FetchPolicy(allow_hosts=["127.0.0.1"], timeout=0.5, robots=False)
    deadline = 0.5 * 3  # DEADLINE_FACTOR x timeout
    url = server.url
    try:
        with Fetcher(policy) as fetcher:
            started = time.monotonic()
            with pytest.raises(TransientFetchError, match="took too long") as caught:
                fetcher.get(url)
            elapsed = time.monotonic() - started
    finally:
        server.close()
    # The drip would take 40 s (headers) or 80 s (body); the bound is the point of the deadline.
    assert elapsed < deadline + 1.0, elapsed
    assert caught.value.url == url


# --- the SSRF table -----------------------------------------------------------------------------


@pytest.fixture
def sites() -> Iterator[dict[str, HTTPTestServer]]:
    """Four local servers: the app (serving /demo/), Flower, a partner and another service."""
    with HTTPTestServer() as app, HTTPTestServer() as flower, HTTPTestServer() as partner:
        with HTTPTestServer() as other:
            app.content("/demo/", b"<html><body><p>demo</p></body></html>")
            yield {"app": app, "flower": flower, "partner": partner, "other": other}


def _fetcher(sites: dict[str, HTTPTestServer], redis_url: str, allow: list[str]) -> Fetcher:
    deny = own_service_rules(
        http_port=sites["app"].port, flower_port=sites["flower"].port, redis_url=redis_url, public_url=None
    )
    return Fetcher(FetchPolicy(allow_hosts=allow, timeout=3.0), deny=deny)


# (case, allow_hosts, how the URL is fetched, target server/port, path, expected error or None)
TABLE = [
    ("source reads the demo site on the app port", ["127.0.0.1"], False, "app", "/demo/", None),
    ("ingest may not read the app port", ["127.0.0.1"], True, "app", "/demo/", "web app"),
    ("ingest may not read the app port as localhost", ["localhost"], True, "app@localhost", "/", "web app"),
    ("ingest may not read Flower", ["127.0.0.1"], True, "flower", "/api/tasks", "Flower"),
    ("source may not read Flower unless allowed", ["127.0.0.1:1"], False, "flower", "/", "loopback"),
    ("ingest may not read Redis", ["127.0.0.1"], True, "redis", "/", "Redis"),
    ("ingest reads an allowed partner", ["127.0.0.1"], True, "partner", "/gazette/news/", None),
    ("an allowed host on another port is refused", ["127.0.0.1:{partner}"], False, "other", "/", "loopback"),
    ("the same with a CIDR:port entry", ["127.0.0.0/8:{partner}"], False, "other", "/", "loopback"),
    ("an IPv4-mapped form of the app port", ["127.0.0.1"], True, "app@[::ffff:127.0.0.1]", "/", "web app"),
    ("metadata service", ["127.0.0.1"], False, "169.254.169.254:80", "/latest/", "link-local"),
]


def _url(sites: dict[str, HTTPTestServer], redis_port: int, target: str, path: str) -> str:
    name, _, host = target.partition("@")
    if ":" in name:
        return f"http://{name}{path}"
    port = redis_port if name == "redis" else sites[name].port
    return f"http://{host or '127.0.0.1'}:{port}{path}"


@pytest.mark.parametrize(
    ("case", "allow", "ingest", "target", "path", "error"), TABLE, ids=[t[0] for t in TABLE]
)
def test_ssrf_table_direct(
    sites: dict[str, HTTPTestServer],
    redis_server: RedisServer,
    case: str,
    allow: list[str],
    ingest: bool,
    target: str,
    path: str,
    error: str | None,
) -> None:
    allow = [a.format(partner=sites["partner"].port) for a in allow]
    url = _url(sites, redis_server.port, target, path)
    with _fetcher(sites, redis_server.url, allow) as fetcher:
        if error is None:
            assert fetcher.get(url, ingest=ingest).status == 200
        else:
            with pytest.raises(BlockedURL, match=error):
                fetcher.get(url, ingest=ingest)
    if error is not None:
        for name in ("app", "flower", "other"):
            assert sites[name].requests == [], f"{case}: {name} was contacted"


@pytest.mark.parametrize(
    ("target", "error"),
    [("app", "web app"), ("flower", "Flower"), ("redis", "Redis"), ("app@localhost", "web app")],
)
def test_ssrf_ingest_redirect_hops_never_reach_own_services(
    sites: dict[str, HTTPTestServer], redis_server: RedisServer, target: str, error: str
) -> None:
    partner = sites["partner"]
    partner.redirect("/story", _url(sites, redis_server.port, target, "/demo/"))
    with _fetcher(sites, redis_server.url, ["127.0.0.1", "localhost"]) as fetcher:
        with pytest.raises(BlockedURL, match=error):
            fetcher.get(partner.url("/story"), ingest=True)
        # The same redirect is fine for a source fetch when the operator allowed the host.
        if target == "app":
            assert fetcher.get(partner.url("/story")).final_url.endswith("/demo/")
    assert [r.path for r in partner.requests].count("/story") == (2 if target == "app" else 1)
    assert sites["flower"].requests == []


def test_ssrf_source_redirect_to_an_unallowed_port_is_blocked(
    sites: dict[str, HTTPTestServer], redis_server: RedisServer
) -> None:
    partner, other = sites["partner"], sites["other"]
    partner.redirect("/story", other.url("/secret"))
    with _fetcher(sites, redis_server.url, [f"127.0.0.1:{partner.port}"]) as fetcher:
        with pytest.raises(BlockedURL, match="loopback"):
            fetcher.get(partner.url("/story"))
    assert other.requests == []


def test_ssrf_robots_fetch_redirect_is_guarded(
    sites: dict[str, HTTPTestServer], redis_server: RedisServer
) -> None:
    partner, flower = sites["partner"], sites["flower"]
    partner.redirect("/robots.txt", flower.url("/robots.txt"))
    with _fetcher(sites, redis_server.url, ["127.0.0.1"]) as fetcher:
        # A robots.txt the guard refuses refuses the page too (it used to count as "unavailable: allow all").
        with pytest.raises(BlockedURL, match=r"robots\.txt was refused \(.*Flower.*\), so .* is not fetched"):
            fetcher.get(partner.url("/gazette/news/"), ingest=True)
    assert flower.requests == []
    assert [r.path for r in partner.requests] == ["/robots.txt"]


def test_ingest_check_without_fetching(sites: dict[str, HTTPTestServer], redis_server: RedisServer) -> None:
    with _fetcher(sites, redis_server.url, ["127.0.0.1"]) as fetcher:
        fetcher.check(sites["app"].url("/demo/"))
        with pytest.raises(BlockedURL, match="web app"):
            fetcher.check(sites["app"].url("/demo/"), ingest=True)
    assert sites["app"].requests == []
