"""A worker killed mid-task loses nothing: the unacked message comes back to a new worker.

Real Redis, real Celery worker processes. The worker is SIGKILLed (no warm shutdown, no chance to
ack or requeue) while it is fetching an article; a fresh worker must finish the job once the Redis
visibility timeout (shortened to 20 s here through SYNDICATE_VISIBILITY_TIMEOUT) has passed, and the
article must be shared exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.support.httpserver import HTTPTestServer, Request, Response
from tests.support.services import RedisServer, Syndicate

pytestmark = pytest.mark.integration

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
SLOW = "/news/cluster-members-65.html"


def test_sigkilled_worker_mid_fetch_is_redelivered(tmp_path: Path, redis_server: RedisServer) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(redis_url).flushdb()
    in_flight = threading.Event()
    hits: list[float] = []

    def slow_first(request: Request) -> Response:
        hits.append(time.monotonic())
        body = (SITE / SLOW.lstrip("/")).read_bytes()
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if len(hits) == 1:
            in_flight.set()
            return Response(200, body, headers, delay=30)  # the worker dies while waiting for this
        return Response(200, body, headers)

    with HTTPTestServer(root=SITE) as site:
        site.route(SLOW, slow_first)
        (tmp_path / "syndicate.yaml").write_text(
            f"""
fetch: {{allow_hosts: ["127.0.0.1"], timeout: 60s}}
sources:
  - name: cluster
    kind: listing
    url: "{site.url("/")}"
    schedule: 1d
    options: {{link_selector: "a.post-link"}}
feeds: [{{name: all, title: All}}]
endpoints: [{{name: log, kind: file, path: shares.jsonl, back_catalogue: true, story_window: 0}}]
""",
            encoding="utf-8",
        )
        syn = Syndicate.make(
            tmp_path,
            {
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "REDIS_URL": redis_url,
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SYNDICATE_VISIBILITY_TIMEOUT": "20",
            },
        )
        assert syn.run("migrate").returncode == 0
        try:
            first = syn.start("worker-1", "worker", "--concurrency", "1", "--hostname", "one@%h")
            assert syn.run("crawl", "cluster").returncode == 0
            assert in_flight.wait(60), syn.logs()
            os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool child, mid-task
            first.wait(10)
            killed_at = time.monotonic()

            syn.start("worker-2", "worker", "--concurrency", "1", "--hostname", "two@%h")
            shares = tmp_path / "shares.jsonl"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if shares.exists() and len(shares.read_text(encoding="utf-8").splitlines()) >= 3:
                    break
                time.sleep(0.5)
            lines = shares.read_text(encoding="utf-8").splitlines() if shares.exists() else []
            assert len(lines) == 3, syn.logs()
            assert time.monotonic() - killed_at < 60  # visibility timeout (20 s) + one restore sweep
            titles = {json.loads(line)["data"]["title"] for line in lines}
            assert "Cluj IT Cluster passes 65 members" in titles
            assert len(hits) >= 2 and hits[1] > killed_at  # fetched again, by the second worker
            time.sleep(2)
            assert len(shares.read_text(encoding="utf-8").splitlines()) == 3  # and shared once
        finally:
            syn.stop()
