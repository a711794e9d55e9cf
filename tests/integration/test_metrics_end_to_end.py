"""/metrics, /healthz and the structured logs after a real run, no mocks in the path.

A real site on 127.0.0.1 (one source that works, one whose listing answers 500), a real Redis, real
``syndicate worker``, ``beat`` and ``web`` processes, a pushed article, and two webhook endpoints (one
answering 200, one 400). ``/metrics`` is parsed with prometheus-client's parser and every metric is
compared with what was done, counted independently: the site's and the receiver's request logs, the
test's own feed requests, ``syndicate status --json``. Then the worker is stopped and the failed shares
retried: the share queue and the outbox backlog show them waiting. The worker runs at DEBUG, so urllib3
logs every request line; the token in the failing endpoint's URL and the configured credentials must
not appear in any process's log.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import pytest
import redis
import requests
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer, Syndicate, free_port, wait_port

pytestmark = pytest.mark.integration

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
REDIS_DB = 6  # other tests use 1-5 and 7-15
TOKEN = "metrics-e2e-api-token-7c1d"
HOOK_SECRET = "metrics-e2e-hook-secret-a9f3b2"
URL_TOKEN = "url-token-5e8a77d0"


class Receiver(BaseHTTPRequestHandler):
    """Answers /good with 200 and /bad with 400; records the paths."""

    paths: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.paths.append(self.path)
        good = self.path.startswith("/good")
        body = json.dumps({"id": f"r{len(self.paths)}"} if good else {"error": "payload refused"}).encode()
        self.send_response(200 if good else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """The webhook receiver's base URL and the list of paths it was sent."""
    paths: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("R", (Receiver,), {"paths": paths}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()


def _config(site: str, hooks: str) -> str:
    return f"""
api:
  token: ${{METRICS_API_TOKEN}}
fetch:
  allow_hosts: ["127.0.0.1"]
  timeout: 10s
sources:
  - name: cluster
    kind: listing
    url: {site}/
    schedule: 1h
    options:
      link_selector: "a.post-link"
  - name: broken
    kind: listing
    url: {site}/broken/
    schedule: 1h
  - name: wire
    kind: push
feeds:
  - name: all
    title: All partner news
endpoints:
  - name: good
    kind: webhook
    url: {hooks}/good
    secret: ${{METRICS_HOOK_SECRET}}
    back_catalogue: true
    story_window: 0
  - name: bad
    kind: webhook
    url: {hooks}/bad?token={URL_TOKEN}
    secret: ${{METRICS_HOOK_SECRET}}
    back_catalogue: true
    story_window: 0
"""


class Client:
    """GETs against the web app, counting the feed answers this test received."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.feed_answers: Counter[int] = Counter()

    def feed(self, headers: dict[str, str] | None = None) -> requests.Response:
        resp = requests.get(f"{self.base}/feeds/all.rss", headers=headers or {}, timeout=5)
        if resp.status_code in (200, 304):  # answered from the feed cache (a 404 is a miss, not counted)
            self.feed_answers[resp.status_code] += 1
        return resp

    def metrics(self) -> dict[str, Any]:
        resp = requests.get(f"{self.base}/metrics", timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return {f.name: f for f in text_string_to_metric_families(resp.text)}


def value(fams: dict[str, Any], family: str, suffix: str = "", **labels: str) -> float | None:
    """The one sample of ``family`` + ``suffix`` with exactly these labels (None when absent)."""
    found = [
        s.value
        for s in fams[family].samples
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (family, labels, found)
    return found[0] if found else None


def total(fams: dict[str, Any], family: str, suffix: str = "_total", **labels: str) -> float:
    """The sum of ``family``'s samples matching ``labels``."""
    return sum(
        s.value
        for s in fams[family].samples
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _until(predicate: Any, timeout: float, message: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(message())


def test_metrics_health_and_logs_after_a_real_run(
    tmp_path: Path, database_url: str, redis_server: RedisServer, receiver: tuple[str, list[str]]
) -> None:
    hooks, received = receiver
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    admin = redis.Redis.from_url(redis_url)
    admin.flushdb()
    with HTTPTestServer(root=SITE) as site:
        site.status("/broken/", 500)
        (tmp_path / "syndicate.yaml").write_text(_config(site.base_url, hooks), encoding="utf-8")
        port = free_port()
        syn = Syndicate.make(
            tmp_path,
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SYNDICATE_HTTP_PORT": str(port),
                "METRICS_API_TOKEN": TOKEN,
                "METRICS_HOOK_SECRET": HOOK_SECRET,
            },
        )
        assert syn.run("migrate").returncode == 0
        try:
            syn.env["SYNDICATE_LOG_LEVEL"] = "DEBUG"  # urllib3 logs every request line it sends
            worker = syn.start("worker", "worker", "--concurrency", "2")
            syn.env["SYNDICATE_LOG_LEVEL"] = "INFO"
            syn.start("beat", "beat")
            web = syn.start("web", "web")
            wait_port(port, 30, web)
            client = Client(f"http://127.0.0.1:{port}")

            def shared(n: int) -> bool:
                return sum(p.startswith("/good") for p in received) >= n and (
                    sum(p.startswith("/bad") for p in received) >= n
                )

            _until(
                lambda: shared(3) and len(feedparser.parse(client.feed().content).entries) >= 3, 120, syn.logs
            )
            pushed = requests.post(
                f"{client.base}/api/articles",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={
                    "url": "https://wire.example/news/pushed",
                    "title": "Pushed: the clusters sign a second agreement",
                    "content_html": "<p>The two clusters signed a second agreement on mentorship.</p>",
                    "source": "wire",
                },
                timeout=5,
            )
            assert pushed.status_code == 202, pushed.text
            _until(
                lambda: shared(4) and len(feedparser.parse(client.feed().content).entries) == 4, 60, syn.logs
            )

            etag = client.feed().headers["ETag"]
            for _ in range(5):
                assert client.feed().status_code == 200
            for _ in range(7):
                assert client.feed({"If-None-Match": etag}).status_code == 304
            time.sleep(1.5)  # the web process flushes its feed counts every second

            health = requests.get(f"{client.base}/healthz", timeout=5)
            assert health.status_code == 200, health.text
            assert (health.json()["worker"], health.json()["beat"]) == ("ok", "ok")

            status = syn.run("status", "--json")
            assert status.returncode == 0, status.stderr
            sources = {s["name"]: s for s in json.loads(status.stdout)["sources"]}
            fams = client.metrics()

            # Articles per source, crawls as the sources table counts them.
            assert (
                value(fams, "syndicate_articles_processed", "_total", source="cluster", outcome="fetched")
                == 3
            )
            assert (
                value(fams, "syndicate_articles_processed", "_total", source="wire", outcome="fetched") == 1
            )
            assert total(fams, "syndicate_articles_processed", outcome="failed") == 0
            assert value(fams, "syndicate_articles", source="cluster", status="ready") == 3
            cluster, broken = sources["cluster"], sources["broken"]
            assert cluster["crawls"] >= 1 and broken["errors"] >= 1 and broken["last_error"]
            assert (
                value(fams, "syndicate_crawls", "_total", source="cluster", outcome="ok") == cluster["crawls"]
            )
            assert (
                value(fams, "syndicate_crawls", "_total", source="broken", outcome="failed")
                == broken["errors"]
            )
            assert value(fams, "syndicate_crawls", "_total", source="broken", outcome="ok") == 0

            # Every request the site received, by status, and its latency.
            seen = Counter(r.path for r in site.requests)
            assert total(fams, "syndicate_fetch_responses", host="127.0.0.1") == len(site.requests)
            assert (
                value(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="500")
                == seen["/broken/"]
            )
            assert (
                value(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="404")
                == seen["/robots.txt"]
            )
            assert value(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="200") == (
                seen["/"] + sum(n for path, n in seen.items() if path.startswith("/news/"))
            )
            assert value(fams, "syndicate_fetch_duration_seconds", "_count", host="127.0.0.1") == len(
                site.requests
            )
            assert value(
                fams, "syndicate_fetch_duration_seconds", "_bucket", host="127.0.0.1", le="+Inf"
            ) == len(site.requests)

            # Shares per endpoint, as the receiver saw them.
            assert value(fams, "syndicate_shares", "_total", endpoint="good", outcome="sent") == 4
            assert value(fams, "syndicate_shares", "_total", endpoint="bad", outcome="failed") == 4
            assert value(fams, "syndicate_shares", "_total", endpoint="bad", outcome="sent") == 0
            assert total(fams, "syndicate_shares", outcome="retried") == 0
            assert len(received) == 8
            assert value(fams, "syndicate_outbox_backlog", endpoint="bad") == 0
            assert value(fams, "syndicate_outbox_oldest_pending_age_seconds", endpoint="bad") == 0

            # Feed requests exactly as this test made them; renders counted and timed.
            assert (
                value(fams, "syndicate_feed_requests", "_total", feed="all", status="200")
                == client.feed_answers[200]
            )
            assert value(fams, "syndicate_feed_requests", "_total", feed="all", status="304") == 7
            ratio = value(fams, "syndicate_feed_not_modified_ratio", feed="all")
            assert ratio == pytest.approx(7 / (7 + client.feed_answers[200]))
            renders = total(fams, "syndicate_feed_renders", feed="all")
            assert renders >= 2  # before and after the pushed article
            assert value(fams, "syndicate_feed_render_duration_seconds", "_count", feed="all") == renders

            # Tasks: every run counted once with its duration.
            runs = total(fams, "syndicate_tasks")
            assert runs == total(fams, "syndicate_task_duration_seconds", "_count")
            # A share that failed for good ends its task in FAILURE (gave_up); no task crashed.
            delivered = total(fams, "syndicate_tasks", task="syndicate.deliver_share", outcome="success")
            assert (
                delivered + total(fams, "syndicate_tasks", task="syndicate.deliver_share", outcome="gave_up")
                >= 8
            )
            assert total(fams, "syndicate_tasks", outcome="failure") == 0
            assert total(fams, "syndicate_tasks", task="syndicate.process_article", outcome="success") >= 4

            # Schedule from the sources table; liveness from the heartbeats.
            last_crawl = datetime.fromisoformat(cluster["last_crawl_at"]).timestamp()
            assert value(
                fams, "syndicate_source_last_crawl_timestamp_seconds", source="cluster"
            ) == pytest.approx(last_crawl, abs=0.01)
            assert value(
                fams, "syndicate_source_next_crawl_timestamp_seconds", source="cluster"
            ) == pytest.approx(last_crawl + 3600, abs=0.01)
            assert value(fams, "syndicate_source_next_crawl_timestamp_seconds", source="wire") is None
            assert value(fams, "syndicate_workers_alive") == 1
            (worker_age,) = [s.value for s in fams["syndicate_worker_heartbeat_age_seconds"].samples]
            assert 0 <= worker_age < 15
            beat_age = value(fams, "syndicate_beat_heartbeat_age_seconds")
            assert beat_age is not None and 0 <= beat_age < 15
            assert value(fams, "syndicate_redis_up") == 1 and value(fams, "syndicate_database_up") == 1

            # No worker: the retried shares wait in the share queue and the outbox.
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
            engine = sqlalchemy.create_engine(database_url)
            with engine.connect() as conn:
                failed = [
                    row[0]
                    for row in conn.execute(sqlalchemy.text("SELECT id FROM shares WHERE endpoint = 'bad'"))
                ]
            engine.dispose()
            assert len(failed) == 4
            for share_id in failed:
                retried = syn.run("share", "retry", str(share_id))
                assert retried.returncode == 0, retried.stderr
            time.sleep(1.0)
            fams = client.metrics()
            assert value(fams, "syndicate_queue_depth", queue="share") == 4
            assert value(fams, "syndicate_queue_depth", queue="fetch") == 0
            assert value(fams, "syndicate_outbox_backlog", endpoint="bad") == 4
            oldest = value(fams, "syndicate_outbox_oldest_pending_age_seconds", endpoint="bad")
            assert oldest is not None and oldest > 1
            assert value(fams, "syndicate_workers_alive") == 0
            assert (
                fams["syndicate_worker_heartbeat_age_seconds"].samples == []
            )  # a clean stop leaves the list
        finally:
            syn.stop()
            admin.close()

    logs = {
        name: (tmp_path / f"{name}.log").read_text(errors="replace", encoding="utf-8")
        for name in ("worker", "beat", "web")
    }
    for name, text in logs.items():
        for secret in (TOKEN, HOOK_SECRET, URL_TOKEN):
            assert secret not in text, f"{secret} in the {name} log"
    # The worker logged JSON lines with the task's ids, and the failing endpoint's request line masked.
    records = [json.loads(line) for line in logs["worker"].splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "message", "component"} <= set(r) for r in records)
    assert any(r.get("task_id") and r.get("article_id") for r in records), records[-5:]
    assert any(r.get("source") == "cluster" for r in records)
    assert "token=***" in logs["worker"]
