"""`syndicate retry` and `syndicate source pause/resume` end to end: real processes, a real local site, a
real Redis, a real `syndicate worker` (and `syndicate beat` for the pause), on SQLite and PostgreSQL.

A story that answers 410 fails its article; a file endpoint whose path is a directory fails its shares
(permanently, without disabling the endpoint). Once both are fixed, `retry --all-failed` brings every
one of them through the worker. A paused source is then not fetched by beat's runs, and is again once
resumed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from tests.support.httpserver import HTTPTestServer, Request, Response, wait_until
from tests.support.services import RedisServer, Syndicate
from worker.store.db import make_engine

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
BROKEN = "/news/rawabi-training-institute.html"
_redis_db = iter(range(5, 16))


class Site:
    """The e2e site, with one story that answers 410 until :attr:`broken` is cleared."""

    def __init__(self) -> None:
        self.broken = True
        self.server = HTTPTestServer(root=SITE)
        self.server.route(BROKEN, self._story)

    def _story(self, _request: Request) -> Response:
        if self.broken:
            return Response(410, b"gone for now", {"Content-Type": "text/plain"})
        body = (SITE / BROKEN.lstrip("/")).read_bytes()
        return Response(200, body, {"Content-Type": "text/html; charset=utf-8"})


@pytest.fixture
def site() -> Iterator[Site]:
    """The site on 127.0.0.1."""
    s = Site()
    with s.server:
        yield s


@pytest.fixture
def syn(tmp_path: Path, site: Site, database_url: str, redis_server: RedisServer) -> Iterator[Syndicate]:
    """A listing source crawled every 2 s by beat, one feed, a file endpoint taking the back catalogue."""
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{next(_redis_db)}"
    redis.Redis.from_url(redis_url).flushdb()
    (tmp_path / "syndicate.yaml").write_text(
        f"""
fetch: {{allow_hosts: ["127.0.0.1"], host_interval: 0.1s}}
sources:
  - {{name: cluster, kind: listing, url: "{site.server.base_url}/", schedule: 2s,
      options: {{link_selector: "a.post-link"}}}}
feeds:
  - {{name: all, title: All}}
endpoints:
  - {{name: archive, kind: file, path: archive.jsonl, back_catalogue: true, story_window: 0}}
""",
        encoding="utf-8",
    )
    s = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
        },
    )
    yield s
    s.stop()


def status(syn: Syndicate) -> dict:
    result = syn.run("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_retry_failed_articles_and_shares_through_a_worker(
    syn: Syndicate, site: Site, tmp_path: Path
) -> None:
    (tmp_path / "archive.jsonl").mkdir()  # the endpoint cannot write: EISDIR, a permanent failure
    crawl = syn.run("crawl", "cluster", "--inline")
    assert crawl.returncode == 0, crawl.stderr
    snap = status(syn)
    assert snap["articles"].get("failed") == 1 and snap["articles"].get("ready") == 2, snap["articles"]
    [archive] = snap["endpoints"]
    assert archive["failed"] == 2 and archive["enabled"], archive

    dry = syn.run("retry", "--all-failed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 shares and 1 articles would be retried" in dry.stdout
    assert status(syn)["articles"].get("failed") == 1  # nothing changed

    assert syn.run("retry", "--endpoint", "nope").returncode == 2
    missing = syn.run("retry", "--share", "99999")
    assert missing.returncode == 1 and "share 99999 is not failed or uncertain" in missing.stderr

    site.broken = False
    (tmp_path / "archive.jsonl").rmdir()
    syn.start("worker", "worker", "--concurrency", "2")
    retry = syn.run("--config", str(tmp_path / "syndicate.yaml"), "retry", "--all-failed")
    assert retry.returncode == 0, retry.stderr
    assert "retried 2 shares and 1 articles" in retry.stdout, retry.stdout

    def all_through() -> bool:
        path = tmp_path / "archive.jsonl"
        return path.is_file() and len(path.read_text(encoding="utf-8").splitlines()) == 3

    assert wait_until(all_through, timeout=90, interval=0.5), syn.logs()
    snap = status(syn)
    assert snap["articles"].get("ready") == 3 and not snap["articles"].get("failed"), snap["articles"]
    assert snap["endpoints"][0]["sent"] == 3 and snap["endpoints"][0]["failed"] == 0
    # Nothing is left to retry, and that is not an error.
    again = syn.run("retry", "--all-failed")
    assert again.returncode == 0 and "retried 0 shares and 0 articles" in again.stdout


def ready_articles(database_url: str) -> int:
    """Ready articles, read straight from the database (cheaper to poll than a `status` process)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM articles WHERE status = 'ready'")).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_paused_source_is_not_crawled_by_beat_until_resumed(
    syn: Syndicate, site: Site, database_url: str
) -> None:
    site.broken = False
    assert syn.run("migrate").returncode == 0
    paused = syn.run("source", "pause", "cluster", "--reason", "site redesign")
    assert paused.returncode == 0 and "source cluster paused since" in paused.stdout, paused.stderr
    assert syn.run("source", "pause", "nope").returncode == 2

    [source] = [s for s in status(syn)["sources"] if s["name"] == "cluster"]
    assert source["state"] == "paused" and source["pause_reason"] == "site redesign" and source["paused_at"]
    human = syn.run("status")
    assert "PAUSED" in human.stdout and "site redesign" in human.stdout, human.stdout
    refused = syn.run("crawl", "cluster")
    assert (
        refused.returncode == 1 and "paused" in refused.stderr and "source resume cluster" in refused.stderr
    )

    syn.start("worker", "worker", "--concurrency", "1")
    syn.start("beat", "beat")
    # beat sends a crawl every 2 s; the worker runs each and fetches nothing
    assert wait_until(lambda: syn.logs().count("is paused") >= 2, timeout=60, interval=0.5), syn.logs()
    assert site.server.requests_to("/") == []

    resumed = syn.run("source", "resume", "cluster")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    assert wait_until(lambda: len(site.server.requests_to("/")) >= 1, timeout=60, interval=0.5), syn.logs()
    assert wait_until(lambda: ready_articles(database_url) == 3, timeout=60, interval=0.5), syn.logs()
    [source] = [s for s in status(syn)["sources"] if s["name"] == "cluster"]
    assert source["state"] == "ok" and source["paused_at"] is None
    assert syn.run("source", "resume", "cluster").stdout.strip() == "source cluster was not paused"
