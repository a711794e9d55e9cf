"""The ``/metrics`` exposition: counters and histograms from Redis, gauges computed at scrape time.

See :mod:`worker.metrics` for why the numbers live in Redis. One scrape costs two Redis round trips
(every family hash, every queue length and the unacked count in one pipeline; the heartbeats in
another) and three grouped queries (sources, articles by status, the share backlog), so it stays
cheap however many processes counted. A part that does not answer (Redis, the database) is reported
as ``syndicate_redis_up 0`` / ``syndicate_database_up 0`` and its metrics are left out, instead of
failing the scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from worker import feedcache, redisclient
from worker.app import app as celery_app
from worker.metrics import (
    ARTICLES,
    CRAWLS,
    EXPORT_FAILURES,
    FAMILIES,
    FEED_REQUESTS,
    SHARES,
    Family,
    parse_counter,
    parse_histogram,
)
from worker.ops import heartbeat
from worker.runtime import Runtime
from worker.storage import storage_state
from worker.store.models import Article, Share, Source, utcnow

log = logging.getLogger(__name__)

BACKLOG_STATUSES = ("pending", "sending")
# kombu's Redis transport keeps each queue as up to four lists, one per priority step.
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue``'s messages in (one per priority step)."""
    return [queue if p == 0 else f"{queue}{_KOMBU_PRIORITY_SEP}{p}" for p in _KOMBU_PRIORITY_STEPS]


def queue_names() -> list[str]:
    """The Celery queues of this deployment, as the app declares them."""
    return [q.name for q in celery_app.conf.task_queues or ()]


def _zeros(rt: Runtime) -> dict[str, list[tuple[str, ...]]]:
    """Label sets reported as 0 before anything was counted: the configured names times the usual outcomes."""
    crawled = [s.name for s in rt.config.sources if s.kind != "push"]
    sources = [s.name for s in rt.config.sources]
    feeds = [f.name for f in rt.config.feeds]
    endpoints = [e.name for e in rt.config.endpoints]
    return {
        CRAWLS.name: [(s, o) for s in crawled for o in ("ok", "failed")],
        ARTICLES.name: [(s, o) for s in sources for o in ("fetched", "updated", "failed")],
        FEED_REQUESTS.name: [(f, c) for f in feeds for c in ("200", "304")],
        EXPORT_FAILURES.name: [(f,) for f in feeds],
        SHARES.name: [(e, o) for e in endpoints for o in ("sent", "failed", "retried")],
    }


class SyndicateCollector:
    """A prometheus-client collector reading one deployment's Redis and database at each scrape."""

    def __init__(self, rt: Runtime, client: redis.Redis) -> None:
        """Read metrics for ``rt``'s config from ``client`` and ``rt``'s database."""
        self.rt = rt
        self.client = client

    def collect(self) -> Iterator[Metric]:
        """Every family (see the README's Metrics section for the list)."""
        redis_up = GaugeMetricFamily("syndicate_redis_up", "Whether Redis answered this scrape.")
        db_up = GaugeMetricFamily("syndicate_database_up", "Whether the database answered this scrape.")
        try:
            yield from self._from_redis()
            redis_up.add_metric([], 1)
        except redis.RedisError as exc:
            log.warning("metrics: Redis did not answer: %s", exc)
            redis_up.add_metric([], 0)
        try:
            yield from self._from_database()
            db_up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            db_up.add_metric([], 0)
        yield redis_up
        yield db_up
        yield from _storage(self.rt, self.client)

    # ---- Redis: counters, histograms, queues, heartbeats --------------------------------------------------

    def _from_redis(self) -> Iterator[Metric]:
        queues = queue_names()
        pipe = self.client.pipeline(transaction=False)
        for family in FAMILIES:
            pipe.hgetall(family.key)
        for queue in queues:
            for key in queue_keys(queue):
                pipe.llen(key)
        pipe.hlen("unacked")
        replies = pipe.execute()
        live = heartbeat.liveness(self.client)  # after the pipeline: a Redis error above skips it all

        hashes = dict(zip((f.name for f in FAMILIES), replies[: len(FAMILIES)], strict=True))
        lengths = iter(replies[len(FAMILIES) : -1])
        zeros = _zeros(self.rt)
        out: list[Metric] = []
        for family in FAMILIES:
            raw = hashes[family.name]
            if family.kind == "histogram":
                out.append(_histogram(family, raw))
            else:
                out.append(_counter(family, raw, zeros.get(family.name, ())))
        out.append(_not_modified_ratio(parse_counter(hashes[FEED_REQUESTS.name])))

        depth = GaugeMetricFamily(
            "syndicate_queue_depth", "Messages waiting in each Celery queue (Redis lists).", labels=["queue"]
        )
        for queue in queues:
            depth.add_metric([queue], sum(next(lengths) for _ in queue_keys(queue)))
        out.append(depth)
        unacked = GaugeMetricFamily(
            "syndicate_queue_unacked",
            "Messages taken by workers and not acknowledged yet (running, or waiting for their countdown).",
        )
        unacked.add_metric([], replies[-1])
        out.append(unacked)
        out.extend(_heartbeats(live))
        out.append(self._export_failing())
        return iter(out)

    def _export_failing(self) -> GaugeMetricFamily:
        feeds = [f.name for f in self.rt.config.feeds]
        errors = feedcache.export_errors(self.client, feeds)
        failing = GaugeMetricFamily(
            "syndicate_feed_export_failing",
            "1 while a feed's last export failed (its files and what is served lag the render), else 0.",
            labels=["feed"],
        )
        for name in feeds:
            failing.add_metric([name], 1 if name in errors else 0)
        return failing

    # ---- database: schedule, articles, outbox -------------------------------------------------------------

    def _from_database(self) -> Iterator[Metric]:
        with self.rt.session() as session:
            sources = session.execute(
                select(Source.name, Source.last_crawl_at, Source.next_crawl_at, Source.paused_at)
            ).all()
            articles = session.execute(
                select(Source.name, Article.status, func.count())
                .join(Article, Article.source_id == Source.id)
                .group_by(Source.name, Article.status)
            ).all()
            backlog = session.execute(
                select(Share.endpoint, func.count(), func.min(Share.created_at))
                .where(Share.status.in_(BACKLOG_STATUSES))
                .group_by(Share.endpoint)
            ).all()
        now = utcnow()
        yield from _schedule(self.rt, sources, now.timestamp())

        stored = GaugeMetricFamily(
            "syndicate_articles", "Stored articles per source by status.", labels=["source", "status"]
        )
        for name, status, count in articles:
            stored.add_metric([name, status], count)
        yield stored

        size = GaugeMetricFamily(
            "syndicate_outbox_backlog",
            "Shares not sent yet (pending or sending) per endpoint.",
            labels=["endpoint"],
        )
        oldest = GaugeMetricFamily(
            "syndicate_outbox_oldest_pending_age_seconds",
            "Age of the oldest share not sent yet, per endpoint.",
            labels=["endpoint"],
        )
        waiting = {name: (count, first) for name, count, first in backlog}
        for name in dict.fromkeys([*(e.name for e in self.rt.config.endpoints), *waiting]):
            count, first = waiting.get(name, (0, None))
            size.add_metric([name], count)
            oldest.add_metric([name], max(0.0, (now - first).total_seconds()) if first is not None else 0.0)
        yield size
        yield oldest


def _storage(rt: Runtime, client: redis.Redis) -> list[Metric]:
    """Whether writes are refused for lack of space now, and the free bytes of each watched directory."""
    disk = storage_state(rt.settings, client)
    full = GaugeMetricFamily(
        "syndicate_storage_full",
        "1 while var/ or the database's directory is nearly full or a write was refused for lack of space.",
    )
    full.add_metric([], 1 if disk["state"] == "full" else 0)
    free = GaugeMetricFamily(
        "syndicate_storage_free_bytes",
        "Free bytes of var/ and of a SQLite database's directory.",
        labels=["path"],
    )
    for name, n in disk["free_bytes"].items():
        free.add_metric([name], n)
    return [full, free]


def _counter(family: Family, raw: dict[Any, Any], zeros: Iterable[tuple[str, ...]]) -> CounterMetricFamily:
    metric = CounterMetricFamily(family.name, family.help, labels=list(family.labels))
    values = {labels: 0.0 for labels in zeros}
    values.update(parse_counter(raw))
    for labels, value in sorted(values.items()):
        if len(labels) == len(family.labels):
            metric.add_metric(list(labels), value)
    return metric


def _histogram(family: Family, raw: dict[Any, Any]) -> HistogramMetricFamily:
    metric = HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    bounds = [*(repr(float(b)) for b in family.buckets), "+Inf"]
    for labels, data in sorted(parse_histogram(raw).items()):
        if len(labels) != len(family.labels):
            continue
        running, buckets = 0.0, []
        for i, bound in enumerate(bounds):
            running += data.buckets.get(i, 0.0)
            buckets.append((bound, running))
        metric.add_metric(list(labels), buckets, data.total)
    return metric


def _not_modified_ratio(requests: dict[tuple[str, ...], float]) -> GaugeMetricFamily:
    ratio = GaugeMetricFamily(
        "syndicate_feed_not_modified_ratio",
        "Share of a feed's answered requests that were 304 Not Modified.",
        labels=["feed"],
    )
    totals: dict[str, list[float]] = {}
    for key, n in requests.items():
        if len(key) == 2:
            entry = totals.setdefault(key[0], [0.0, 0.0])
            entry[0] += n
            entry[1] += n if key[1] == "304" else 0.0
    for feed, (total, not_modified) in sorted(totals.items()):
        if total:
            ratio.add_metric([feed], not_modified / total)
    return ratio


def _heartbeats(live: dict[str, Any]) -> list[Metric]:
    workers = GaugeMetricFamily(
        "syndicate_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat.",
        labels=["worker"],
    )
    for row in live["workers"]:
        workers.add_metric([row["name"]], row["age_seconds"])
    alive = GaugeMetricFamily(
        "syndicate_workers_alive", f"Workers whose heartbeat is under {heartbeat.STALE_AFTER:g} s old."
    )
    alive.add_metric([], heartbeat.judge(live).live_workers)
    beat = GaugeMetricFamily("syndicate_beat_heartbeat_age_seconds", "Seconds since beat's last heartbeat.")
    if live["beat"] is not None:
        beat.add_metric([], live["beat"]["age_seconds"])
    standby = GaugeMetricFamily(
        "syndicate_beat_standby_heartbeat_age_seconds",
        "Seconds since each beat standing by for the leader lock last checked it.",
        labels=["beat"],
    )
    for row in live.get("standby") or []:
        standby.add_metric([row["name"]], row["age_seconds"])
    return [workers, alive, beat, standby]


def _schedule(rt: Runtime, rows: Iterable[Any], now: float) -> Iterator[Metric]:
    last = GaugeMetricFamily(
        "syndicate_source_last_crawl_timestamp_seconds",
        "When each source was last crawled.",
        labels=["source"],
    )
    upcoming = GaugeMetricFamily(
        "syndicate_source_next_crawl_timestamp_seconds",
        "When each source is crawled next: its interval after the last crawl, or its back-off; now if due.",
        labels=["source"],
    )
    paused = GaugeMetricFamily("syndicate_source_paused", "1 while a source is paused.", labels=["source"])
    configured = {s.name: s for s in rt.config.sources}
    for name, last_at, next_at, paused_at in rows:
        source = configured.get(name)
        if source is None or source.kind == "push":
            continue
        paused.add_metric([name], 1 if paused_at is not None else 0)
        if last_at is not None:
            last.add_metric([name], last_at.timestamp())
        if not source.enabled or paused_at is not None:
            continue
        if next_at is not None:  # backing off after errors
            due = next_at.timestamp()
        elif last_at is not None:
            due = last_at.timestamp() + source.schedule
        else:  # never crawled: beat's start-up crawl takes it now
            due = now
        upcoming.add_metric([name], due)
    yield last
    yield upcoming
    yield paused


def render_metrics(rt: Runtime) -> tuple[bytes, str]:
    """The exposition text of one scrape and its content type."""
    client = redisclient.connect(rt.settings.effective_redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SyndicateCollector(rt, client))
        started = time.perf_counter()
        body = generate_latest(registry)
        log.debug("metrics scrape took %.1f ms", (time.perf_counter() - started) * 1000)
        return body, CONTENT_TYPE_LATEST
    finally:
        client.close()
