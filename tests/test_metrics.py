"""Metrics on a real Redis and database: counters from several processes add up exactly, histograms expose
cumulative buckets, gauges are computed from the database and the kombu queue lists, feed requests reach
Redis within a second, and a Redis outage keeps the counts. ``/metrics`` is parsed with prometheus-client's
own parser."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.exceptions import Retry
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from config.model import parse_config
from config.settings import Settings
from tests.support.httpserver import HTTPTestServer, Response
from tests.support.services import RedisServer, free_port
from worker import logs, metrics
from worker.crawl import crawl_source, sync_sources
from worker.errors import GaveUp, Rescheduled
from worker.ingest import PushedArticle, ingest_article
from worker.metrics import FEED_REQUESTS, Recorder
from worker.ops import heartbeat
from worker.ops.metrics_collector import render_metrics
from worker.outbox.delivery import deliver_share
from worker.outbox.planning import plan_shares
from worker.process import process_article
from worker.render import render_current
from worker.runtime import Runtime, set_runtime
from worker.store.db import get_engine, upgrade
from worker.web.app import create_web_app

REDIS_DB = 13  # other tests use 1-12 and 14


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """An emptied database of the session's real Redis."""
    url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of that database."""
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def recorder(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The process recorder, emptied and writing to the test Redis."""
    fresh = Recorder()
    fresh.client = client
    monkeypatch.setattr(metrics, "recorder", fresh)
    return fresh


@pytest.fixture
def runtime(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a migrated database: one crawled source (nothing listens on port 9), pushed articles,
    a file endpoint and two feeds."""
    upgrade(database_url)
    config = parse_config(
        {
            "fetch": {"allow_hosts": ["127.0.0.1"]},
            "sources": [
                {"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/", "schedule": "10m"},
                {"name": "wire", "kind": "push"},
            ],
            "feeds": [{"name": "all", "title": "All"}, {"name": "it", "title": "IT", "categories": ["IT"]}],
            "endpoints": [{"name": "archive", "kind": "file", "path": "shares.jsonl"}],
        }
    )
    settings = Settings(database_url=database_url, redis_url=redis_url, var_dir=tmp_path / "var")
    rt = Runtime(
        settings=settings, config=config, base_dir=tmp_path, redis_client=redis.Redis.from_url(redis_url)
    )
    yield rt
    get_engine(database_url).dispose()


def families(text: str) -> dict[str, Any]:
    """Parsed exposition text: family name -> family."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], family: str, suffix: str = "", **labels: str) -> float | None:
    """The value of the one sample of ``family`` + ``suffix`` (``_total``, ``_bucket``...) with ``labels``."""
    found = [
        s.value
        for s in fams[family].samples
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, (family, labels, found)
    return found[0] if found else None


def _count_in_child(url: str, n: int) -> None:
    rec = Recorder(background=False)
    rec.client = redis.Redis.from_url(url)
    for i in range(n):
        rec.inc(metrics.SHARES, ("archive", "sent"))
        rec.observe(metrics.FETCH_SECONDS, ("127.0.0.1",), 0.02 if i % 2 else 3.0)
        if i % 100 == 0:
            rec.flush()
    rec.flush()


def test_counts_from_several_processes_add_up_exactly(
    runtime: Runtime, client: redis.Redis, recorder: Recorder
) -> None:
    ctx = multiprocessing.get_context("fork")  # like Celery's prefork pool children
    children = [ctx.Process(target=_count_in_child, args=(runtime.settings.redis_url, 250)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    body, content_type = render_metrics(runtime)
    assert content_type.startswith("text/plain")
    fams = families(body.decode())
    assert sample(fams, "syndicate_shares", "_total", endpoint="archive", outcome="sent") == 750
    assert (
        sample(fams, "syndicate_shares", "_total", endpoint="archive", outcome="failed") == 0
    )  # from config
    # 375 observations of 0.02 s (bucket le=0.025) and 375 of 3 s (le=5.0), cumulative.
    fetch = "syndicate_fetch_duration_seconds"
    assert sample(fams, fetch, "_bucket", host="127.0.0.1", le="0.01") == 0
    assert sample(fams, fetch, "_bucket", host="127.0.0.1", le="0.025") == 375
    assert sample(fams, fetch, "_bucket", host="127.0.0.1", le="2.5") == 375
    assert sample(fams, fetch, "_bucket", host="127.0.0.1", le="5.0") == 750
    assert sample(fams, fetch, "_bucket", host="127.0.0.1", le="+Inf") == 750
    assert sample(fams, fetch, "_count", host="127.0.0.1") == 750
    assert sample(fams, fetch, "_sum", host="127.0.0.1") == pytest.approx(375 * 0.02 + 375 * 3.0)


def test_pipeline_work_counted_and_gauges_from_the_database(
    runtime: Runtime, client: redis.Redis, recorder: Recorder
) -> None:
    with runtime.session() as session:
        ids = sync_sources(session, runtime.config)
    crawl_source(runtime, ids["valley"])  # robots.txt unreachable: a failed crawl, backing off
    share_ids: list[int] = []
    for n in (1, 2, 3):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Story {n}",
                content_html=f"<p>Story {n} is long enough to be an article about the partner clusters.</p>",
                category="IT",
                source="wire",
            ),
        )
        with logs.task_context(article_id=article_id):  # as PipelineTask.__call__ does
            metrics.count_processed(process_article(runtime, article_id))
        share_ids += plan_shares(runtime, article_id)
    assert deliver_share(runtime, share_ids[0]) == "sent"
    assert metrics.timed_render(render_current, runtime, "all") is True
    assert metrics.timed_render(render_current, runtime, "all") is False
    # Three messages waiting in "fetch" (one at priority 3: kombu's second list), one in "share".
    client.lpush("fetch", "m1", "m2")
    client.lpush("fetch\x06\x163", "m3")
    client.lpush("share", "m4")
    heartbeat.beat(client, heartbeat.WORKERS_KEY, "celery@one")
    heartbeat.beat(client, heartbeat.BEAT_KEY, "beat@one")
    heartbeat.beat(client, heartbeat.STANDBY_KEY, "beat@two")
    assert recorder.flush()

    fams = families(render_metrics(runtime)[0].decode())
    assert sample(fams, "syndicate_redis_up") == 1 and sample(fams, "syndicate_database_up") == 1
    assert sample(fams, "syndicate_crawls", "_total", source="valley", outcome="failed") == 1
    assert sample(fams, "syndicate_crawls", "_total", source="valley", outcome="ok") == 0
    assert sample(fams, "syndicate_articles_processed", "_total", source="wire", outcome="fetched") == 3
    assert sample(fams, "syndicate_articles_processed", "_total", source="wire", outcome="failed") == 0
    assert sample(fams, "syndicate_articles", source="wire", status="ready") == 3
    assert sample(fams, "syndicate_shares", "_total", endpoint="archive", outcome="sent") == 1
    assert sample(fams, "syndicate_outbox_backlog", endpoint="archive") == 2
    oldest = sample(fams, "syndicate_outbox_oldest_pending_age_seconds", endpoint="archive")
    assert oldest is not None and 0 <= oldest < 120
    assert sample(fams, "syndicate_feed_renders", "_total", feed="all", changed="true") == 1
    assert sample(fams, "syndicate_feed_renders", "_total", feed="all", changed="false") == 1
    assert sample(fams, "syndicate_feed_render_duration_seconds", "_count", feed="all") == 2
    assert sample(fams, "syndicate_queue_depth", queue="fetch") == 3
    assert sample(fams, "syndicate_queue_depth", queue="share") == 1
    assert sample(fams, "syndicate_queue_depth", queue="crawl") == 0
    assert sample(fams, "syndicate_workers_alive") == 1
    age = sample(fams, "syndicate_worker_heartbeat_age_seconds", worker="celery@one")
    assert age is not None and age < 5
    beat_age = sample(fams, "syndicate_beat_heartbeat_age_seconds")
    assert beat_age is not None and beat_age < 5
    standby_age = sample(fams, "syndicate_beat_standby_heartbeat_age_seconds", beat="beat@two")
    assert standby_age is not None and standby_age < 5
    assert sample(fams, "syndicate_beat_standby_heartbeat_age_seconds", beat="beat@one") is None
    # The failed crawl backs off: next crawl after now, last crawl just now; push sources have no schedule.
    now = time.time()
    last = sample(fams, "syndicate_source_last_crawl_timestamp_seconds", source="valley")
    upcoming = sample(fams, "syndicate_source_next_crawl_timestamp_seconds", source="valley")
    assert last is not None and upcoming is not None and now - 120 < last <= now < upcoming
    assert sample(fams, "syndicate_source_next_crawl_timestamp_seconds", source="wire") is None
    assert sample(fams, "syndicate_source_paused", source="valley") == 0


def test_fetch_latency_and_status_per_configured_host(
    runtime: Runtime, client: redis.Redis, recorder: Recorder
) -> None:
    with HTTPTestServer() as server:
        server.route(
            "/ok", Response(200, b"<html><body><p>hello</p></body></html>", {"Content-Type": "text/html"})
        )
        server.status("/gone", 410)
        config = runtime.config.model_copy(
            update={
                "sources": [
                    runtime.config.sources[0].model_copy(update={"url": server.url("/news/")}),
                    *runtime.config.sources[1:],
                ]
            }
        )
        rt = Runtime(settings=runtime.settings, config=config, base_dir=runtime.base_dir)
        set_runtime(rt)
        try:
            assert metrics.host_label(server.url("/x")) == "127.0.0.1"
            assert metrics.host_label("https://elsewhere.example/x") == metrics.OTHER_HOST
            rt.fetcher.get(server.url("/ok"))
            with pytest.raises(Exception):
                rt.fetcher.get(server.url("/gone"))
        finally:
            set_runtime(None)
    assert recorder.flush()
    fams = families(render_metrics(runtime)[0].decode())
    assert sample(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="200") == 1
    assert sample(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="410") == 1
    # robots.txt (404 here) is fetched first, through the same path.
    assert sample(fams, "syndicate_fetch_responses", "_total", host="127.0.0.1", status="404") == 1
    assert sample(fams, "syndicate_fetch_duration_seconds", "_count", host="127.0.0.1") == 3


def test_feed_requests_reach_redis_within_a_second_without_a_round_trip_each(
    runtime: Runtime, client: redis.Redis, recorder: Recorder
) -> None:
    before = client.info("stats")["total_commands_processed"]
    for _ in range(500):
        metrics.count_feed_request("all", 200, client)
    for _ in range(1500):
        metrics.count_feed_request("all", 304, client)
    metrics.count_feed_request("it", 200, client)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and metrics.feed_request_totals(client).get("it") is None:
        time.sleep(0.05)
    assert metrics.feed_request_totals(client) == {"all": (2000, 1500), "it": (1, 0)}
    # 2,001 requests cost a handful of commands (one pipelined flush of three fields, and our polling).
    assert client.info("stats")["total_commands_processed"] - before < 200
    fams = families(render_metrics(runtime)[0].decode())
    assert sample(fams, "syndicate_feed_requests", "_total", feed="all", status="304") == 1500
    assert sample(fams, "syndicate_feed_not_modified_ratio", feed="all") == pytest.approx(0.75)
    assert sample(fams, "syndicate_feed_not_modified_ratio", feed="it") == 0


def test_a_redis_outage_keeps_the_counts_for_the_next_flush(client: redis.Redis) -> None:
    rec = Recorder(background=False)  # no flushing thread racing the flushes below
    rec.client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    rec.inc(metrics.CRAWLS, ("valley", "ok"), 2)
    rec.observe(metrics.RENDER_SECONDS, ("all",), 0.3)
    assert rec.flush() is False
    rec.inc(metrics.CRAWLS, ("valley", "ok"))
    rec.client = client
    assert rec.flush() is True
    assert client.hget(metrics.CRAWLS.key, "valley\tok") == b"3"
    assert float(client.hget(metrics.RENDER_SECONDS.key, "all\tsum") or 0) == pytest.approx(0.3)
    assert client.hget(metrics.RENDER_SECONDS.key, "all\tb6") == b"1"  # bucket 6: 0.25 < 0.3 <= 0.5


def test_scrape_without_redis_still_reports_the_database(runtime: Runtime) -> None:
    down = Runtime(
        settings=runtime.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}),
        config=runtime.config,
        base_dir=runtime.base_dir,
    )
    fams = families(render_metrics(down)[0].decode())
    assert sample(fams, "syndicate_redis_up") == 0 and sample(fams, "syndicate_database_up") == 1
    assert sample(fams, "syndicate_outbox_backlog", endpoint="archive") == 0
    assert "syndicate_shares" not in fams


def test_metrics_route_serves_the_exposition_format(runtime: Runtime, client: redis.Redis) -> None:
    client.hincrby(FEED_REQUESTS.key, "all\t200", 7)
    with TestClient(create_web_app(runtime)) as web:
        resp = web.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    fams = families(resp.text)
    assert sample(fams, "syndicate_feed_requests", "_total", feed="all", status="200") == 7


def _child_counts_one(rec: Recorder, url: str) -> None:
    rec.client = redis.Redis.from_url(url)
    rec.inc(metrics.CRAWLS, ("valley", "ok"))
    rec.flush()


def test_a_forked_child_does_not_resend_the_parents_unsent_counts(
    redis_url: str, client: redis.Redis
) -> None:
    rec = Recorder(background=False)
    rec.client = client
    rec.inc(metrics.CRAWLS, ("valley", "ok"), 5)  # buffered in the parent when Celery forks its pool
    child = multiprocessing.get_context("fork").Process(target=_child_counts_one, args=(rec, redis_url))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert client.hget(metrics.CRAWLS.key, "valley\tok") == b"1"
    assert rec.flush()
    assert client.hget(metrics.CRAWLS.key, "valley\tok") == b"6"


def test_task_outcomes_are_told_by_exception_class_not_name(recorder: Recorder, client: redis.Redis) -> None:
    """A run's outcome follows the error tree: a subclass of GaveUp gave up; a stranger merely named
    ``GaveUp`` (some library's) is a failure."""

    class Abandoned(GaveUp):
        pass

    gave_up_by_name = type("GaveUp", (Exception,), {})

    class Task:
        request = None

        def __init__(self, name: str) -> None:
            self.name = name

        def run(self) -> None:
            pass

    runs = {
        "retry": Retry(),
        "rescheduled": Rescheduled(),
        "abandoned": Abandoned(),
        "named": gave_up_by_name(),
    }
    for name, error in runs.items():
        with pytest.raises(type(error)), metrics.task_run(Task(name), (), {}):
            raise error
    with metrics.task_run(Task("fine"), (), {}):
        pass
    raw = client.hgetall(metrics.TASKS.key)
    counts = {"\t".join(k): int(v) for k, v in metrics.parse_counter(raw).items()}
    assert counts == {
        "retry\tretry": 1,
        "rescheduled\trescheduled": 1,
        "abandoned\tgave_up": 1,
        "named\tfailure": 1,
        "fine\tsuccess": 1,
    }
