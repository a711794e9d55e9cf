"""Prometheus metrics for a deployment of several workers and web processes on several machines.

Why not prometheus-client's own registry: its counters live in the memory of the process that
counts. Syndicate counts in Celery pool children (forked, recycled, killed and restarted), in every
web process and in the CLI, possibly on several machines, while Prometheus scrapes one URL. The
client's ``multiprocess`` mode shares files through a directory, which works for the forks of one
machine only and leaves dead children's files to clean up. So:

* **Counters and histograms live in Redis**, which every process already talks to. A metric family
  is one hash, ``syndicate:metrics:<name>``, its fields the label values joined by a tab and, for
  histograms, ``<labels>\\tb<i>`` per bucket (not cumulative: each observation bumps exactly one
  bucket), ``<labels>\\tsum`` and ``<labels>\\tcount``. ``HINCRBY``/``HINCRBYFLOAT`` are atomic, so
  any number of writers add up exactly, and what was written survives the writer's death.
* **Writers buffer and pipeline.** Every process adds to an in-memory buffer (:class:`Recorder`, a
  dictionary update under an uncontended lock: well under a microsecond). A Celery task's increments
  (its outcome and duration, the fetches, renders and shares it did) go out in one pipelined round
  trip when the task ends (:func:`flush`, called by :class:`~worker.tasks.PipelineTask`). Anything
  else, above all the web processes' feed requests (thousands a second, answered from memory
  without a Redis call), is flushed by a daemon thread every :data:`FLUSH_SECONDS`: a process killed
  between flushes loses at most that second. A flush that fails keeps its counts for the next one
  and logs (at most once a minute); metrics never fail or slow the work they count.
* **Gauges are computed at scrape time** from their sources of truth: queue depth is ``LLEN`` of
  each kombu queue list (all four priority lists), outbox backlog and the oldest pending share come
  from the shares table, last and next crawl per source from the sources table, stored articles by
  status from the articles table, heartbeat ages from :mod:`worker.ops.heartbeat`. Nothing has to keep
  them current, so they cannot drift, and a restarted process changes none of them.
* ``/metrics`` renders a :class:`SyndicateCollector` (``CounterMetricFamily``,
  ``GaugeMetricFamily``, ``HistogramMetricFamily``) in a registry of its own: one Redis round trip
  and three small queries per scrape, and any web process answers for the whole deployment.

Label cardinality is bounded by the configuration: ``source``, ``feed`` and ``endpoint`` are the
configured names (a name that left the config keeps the series it has); ``host`` is one of the
configured sources' hosts or ``other`` (pushed articles may name any host); ``status`` is the HTTP
code or ``error`` when no answer came; ``task`` and ``outcome`` come from fixed sets. Configured
names are reported with zeros before anything happened, so a rate never starts from a missing series.
"""

from __future__ import annotations

import bisect
import inspect
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from celery.exceptions import Retry

from worker import logs, redisclient
from worker.errors import GaveUp, Rescheduled

log = logging.getLogger(__name__)

PREFIX = "syndicate:metrics:"
FLUSH_SECONDS = 1.0
OTHER_HOST = "other"

T = TypeVar("T")


@dataclass(frozen=True)
class Family:
    """One metric family recorded in Redis: its exposition name, help, label names and buckets."""

    name: str
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    key: str = field(init=False, default="")  # the Redis hash holding this family

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", PREFIX + self.name)


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASKS = Family("syndicate_tasks", "counter", "Celery task runs by outcome.", ("task", "outcome"))
TASK_SECONDS = Family(
    "syndicate_task_duration_seconds", "histogram", "Celery task run time.", ("task",), (*_LATENCY, 60.0)
)
CRAWLS = Family(
    "syndicate_crawls", "counter", "Source crawls by outcome (ok, failed).", ("source", "outcome")
)
ARTICLES = Family(
    "syndicate_articles_processed",
    "counter",
    "Articles processed per source: fetched (new), updated, unchanged, failed, skipped, duplicate.",
    ("source", "outcome"),
)
FETCHES = Family(
    "syndicate_fetch_responses",
    "counter",
    "Page fetches per host by HTTP status ('error': no answer).",
    ("host", "status"),
)
FETCH_SECONDS = Family(
    "syndicate_fetch_duration_seconds", "histogram", "Page fetch latency per host.", ("host",), _LATENCY
)
RENDERS = Family("syndicate_feed_renders", "counter", "Feed renders (every format).", ("feed", "changed"))
RENDER_SECONDS = Family(
    "syndicate_feed_render_duration_seconds",
    "histogram",
    "Feed render time (every format).",
    ("feed",),
    _LATENCY,
)
EXPORT_FAILURES = Family(
    "syndicate_feed_export_failures",
    "counter",
    "Feed exports that failed (the export directory could not be written).",
    ("feed",),
)
FEED_REQUESTS = Family(
    "syndicate_feed_requests", "counter", "Feed requests answered, by HTTP status.", ("feed", "status")
)
SHARES = Family(
    "syndicate_shares",
    "counter",
    "Share attempts per endpoint by outcome (sent, failed, retried, uncertain).",
    ("endpoint", "outcome"),
)
FAMILIES: tuple[Family, ...] = (TASKS, TASK_SECONDS, CRAWLS, ARTICLES, FETCHES, FETCH_SECONDS)
FAMILIES += (RENDERS, RENDER_SECONDS, FEED_REQUESTS, SHARES, EXPORT_FAILURES)
STORAGE_REFUSED = Family(
    "syndicate_storage_refused_writes",
    "counter",
    "Writes refused because the disk (var/ or the database's) was full, by where they came from.",
    ("where",),
)
FAMILIES += (STORAGE_REFUSED,)


def label_field(*values: object) -> str:
    """The hash field of one label combination (tabs and newlines cannot occur in our label values)."""
    joined = "\t".join(map(str, values))
    if joined.count("\t") != len(values) - 1 or "\n" in joined:
        joined = "\t".join(str(v).replace("\t", " ").replace("\n", " ") for v in values)
    return joined


# ---- recording -------------------------------------------------------------------------------------------


class Recorder:
    """The process's metric buffer (see the module docstring): add in memory, flush in one round trip."""

    def __init__(self, interval: float = FLUSH_SECONDS, *, background: bool = True) -> None:
        """Flush every ``interval`` seconds from a thread (started on first use) unless not ``background``."""
        self.interval = interval
        self.background = background
        self.client: redis.Redis | None = None
        self._ints: Counter[tuple[str, str]] = Counter()
        self._floats: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._started = False  # a flushing thread runs in this process (reset in a forked child)
        os.register_at_fork(after_in_child=self._forked)
        self._warned = 0.0

    def inc(self, family: Family, labels: tuple[object, ...], amount: int = 1) -> None:
        """Add ``amount`` to a counter."""
        with self._lock:
            self._ints[(family.key, label_field(*labels))] += amount
        self._ensure_thread()

    def observe(self, family: Family, labels: tuple[object, ...], value: float) -> None:
        """Record one observation in a histogram (its bucket, count and sum)."""
        base = label_field(*labels)
        bucket = bisect.bisect_left(family.buckets, value)  # == len(buckets): only +Inf holds it
        with self._lock:
            self._ints[(family.key, f"{base}\tb{bucket}")] += 1
            self._ints[(family.key, f"{base}\tcount")] += 1
            key = (family.key, f"{base}\tsum")
            self._floats[key] = self._floats.get(key, 0.0) + value
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._started or not self.background:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="syndicate-metrics", daemon=True).start()

    def _forked(self) -> None:
        # The child has its own memory: no thread, and the parent's unsent counts are the parent's.
        self._lock = threading.Lock()
        self._started = False
        self._ints, self._floats = Counter(), {}

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def _client(self) -> redis.Redis:
        if self.client is None:
            self.client = redisclient.bookkeeping()
        return self.client

    def flush(self) -> bool:
        """Send everything buffered in one pipelined round trip; whether it went (else it is kept)."""
        with self._lock:
            ints, floats = self._ints, self._floats
            self._ints, self._floats = Counter(), {}
        if not ints and not floats:
            return True
        try:
            pipe = self._client().pipeline(transaction=False)
            for (key, field), n in ints.items():
                pipe.hincrby(key, field, n)
            for (key, field), x in floats.items():
                pipe.hincrbyfloat(key, field, x)
            pipe.execute()
            return True
        except Exception as exc:  # Redis down or settings unreadable: keep the counts, say so now and then
            with self._lock:
                self._ints.update(ints)
                for where, x in floats.items():
                    self._floats[where] = self._floats.get(where, 0.0) + x
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("could not write metrics to Redis (kept for the next try): %s", exc)
            return False


#: This process's recorder.
recorder = Recorder()


def flush() -> bool:
    """Send this process's buffered metrics now (end of a task); whether Redis took them."""
    return recorder.flush()


def count_feed_request(feed: str, status: int, client: Any = None) -> None:
    """Count one feed request answered with ``status`` (in memory; in Redis within a second).

    ``client`` (the web process's Redis client) is used for the flushes when none is set yet.
    """
    if recorder.client is None and client is not None:
        recorder.client = client
    recorder.inc(FEED_REQUESTS, (feed, status))


def count_share(endpoint: str, status: str) -> None:
    """Count a share attempt's result as recorded in the outbox (``pending`` again means retried)."""
    recorder.inc(SHARES, (endpoint, "retried" if status == "pending" else status))


def count_refused_write(where: str, client: Any = None) -> None:
    """Count one write refused for lack of space (``ingest``, ``api``, a task name)."""
    if recorder.client is None and client is not None:
        recorder.client = client
    recorder.inc(STORAGE_REFUSED, (where,))


def count_article(source: str, outcome: str) -> None:
    """Count one processed article of ``source``: fetched, updated, unchanged, failed, skipped, duplicate."""
    recorder.inc(ARTICLES, (source, outcome))


def count_crawl(report: Any) -> None:
    """Count a finished crawl from its :class:`~worker.crawl.CrawlReport` (skipped runs are not crawls)."""
    if getattr(report, "paused", False) or getattr(report, "deferred", None) is not None:
        return
    recorder.inc(CRAWLS, (report.source, "failed" if report.error else "ok"))


def article_outcome(outcome: Any) -> str:
    """The :data:`ARTICLES` outcome of a :class:`~worker.process.ProcessOutcome` (None: gave up)."""
    if outcome is None:
        return "failed"
    if outcome.status != "ready":
        return str(outcome.status)
    if outcome.share:
        return "fetched"
    return "updated" if outcome.changed else "unchanged"


def count_processed(outcome: Any) -> None:
    """Count a processed article under the source :mod:`worker.logs` has in context (set by the stage)."""
    count_article(str(logs.current_context().get("source", "unknown")), article_outcome(outcome))


def task_finished(task: str, outcome: str, seconds: float) -> None:
    """Count one task run (success, retry, rescheduled, gave_up, failure) and its duration."""
    recorder.inc(TASKS, (task, outcome))
    recorder.observe(TASK_SECONDS, (task,), seconds)


def _no_config() -> Any:
    return None


_current_config: Callable[[], Any] = _no_config


def watch_config(current: Callable[[], Any]) -> None:
    """Label hosts by the sources of the config ``current()`` returns (None: none known yet).

    :mod:`worker.runtime` registers its process-wide runtime's config: metrics must not load the
    config or connect anywhere, and does not import the runtime.
    """
    global _current_config
    _current_config = current


def _known_hosts() -> frozenset[str]:
    """The configured sources' hosts, from the process's runtime if one exists (never builds one)."""
    config = _current_config()
    if config is None:
        return frozenset()
    cached = _hosts_cache.get(id(config))
    if cached is None:
        cached = frozenset(
            (urlsplit(s.url).hostname or "").lower() for s in config.sources if getattr(s, "url", "")
        )
        _hosts_cache.clear()
        _hosts_cache[id(config)] = cached
    return cached


_hosts_cache: dict[int, frozenset[str]] = {}


def host_label(url: str) -> str:
    """``url``'s host when it is a configured source's host, else :data:`OTHER_HOST` (bounded labels)."""
    host = (urlsplit(url).hostname or "").lower()
    return host if host in _known_hosts() else OTHER_HOST


def timed_fetch(send: Callable[..., T], url: str, *args: Any, **kwargs: Any) -> T:
    """``send(url, ...)`` (an HTTP exchange answering with ``.status``), its latency and status counted."""
    host = host_label(url)
    started = time.perf_counter()
    status: object = "error"
    try:
        answer = send(url, *args, **kwargs)
        status = getattr(answer, "status", "error")
        return answer
    finally:
        recorder.observe(FETCH_SECONDS, (host,), time.perf_counter() - started)
        recorder.inc(FETCHES, (host, status))


def timed_render(render: Callable[..., T], rt: Any, feed: str) -> T:
    """``render(rt, feed)`` (a feed render returning whether it changed), counted and timed."""
    started = time.perf_counter()
    changed = render(rt, feed)
    recorder.observe(RENDER_SECONDS, (feed,), time.perf_counter() - started)
    recorder.inc(RENDERS, (feed, "true" if changed else "false"))
    return changed


def count_export_failure(feed: str) -> None:
    """Count one failed export of ``feed`` (its reason is kept in Redis, see :mod:`worker.feedcache`)."""
    recorder.inc(EXPORT_FAILURES, (feed,))


# ---- reading ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_counter(raw: dict[Any, Any]) -> dict[tuple[str, ...], float]:
    """A counter hash as ``label values -> value``."""
    return {tuple(_text(k).split("\t")): float(v) for k, v in raw.items()}


@dataclass
class HistogramData:
    """One label combination of a histogram: per-bucket (non-cumulative) counts, count and sum."""

    buckets: dict[int, float]
    count: float = 0.0
    total: float = 0.0


def parse_histogram(raw: dict[Any, Any]) -> dict[tuple[str, ...], HistogramData]:
    """A histogram hash as ``label values -> HistogramData``."""
    out: dict[tuple[str, ...], HistogramData] = {}
    for key, value in raw.items():
        *labels, part = _text(key).split("\t")
        data = out.setdefault(tuple(labels), HistogramData(buckets={}))
        if part == "count":
            data.count = float(value)
        elif part == "sum":
            data.total = float(value)
        elif part.startswith("b"):
            data.buckets[int(part[1:])] = float(value)
    return out


def feed_request_counts(client: redis.Redis) -> dict[tuple[str, str], int]:
    """Every web process's feed requests so far: ``(feed, status) -> count``."""
    return {(k[0], k[1]): int(v) for k, v in parse_counter(client.hgetall(FEED_REQUESTS.key)).items()}


def feed_request_totals(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Feed name -> (requests answered, of which 304 Not Modified), counted across web processes.

    Counts reach Redis within :data:`FLUSH_SECONDS` of the request.
    """
    totals: dict[str, tuple[int, int]] = {}
    for (feed, status), n in feed_request_counts(client).items():
        requests, not_modified = totals.get(feed, (0, 0))
        totals[feed] = (requests + n, not_modified + (n if status == "304" else 0))
    return totals


# ---- around each task ------------------------------------------------------------------------------------

# Task parameters whose values go into every log line of the run, under these names.
_LOGGED_PARAMS = {"source_id": "source_id", "article_id": "article_id", "share_id": "share_id"}
_LOGGED_PARAMS["feed_name"] = "feed"
_param_names: dict[str, tuple[str, ...]] = {}


def _task_ids(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    names = _param_names.get(task.name)
    if names is None:
        try:
            names = tuple(inspect.signature(task.run).parameters)
        except (TypeError, ValueError):
            names = ()
        _param_names[task.name] = names
    given = {**dict(zip(names, args, strict=False)), **kwargs}
    return {_LOGGED_PARAMS[k]: v for k, v in given.items() if k in _LOGGED_PARAMS}


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "success"
    if isinstance(exc, Retry):
        return "retry"
    if isinstance(exc, Rescheduled):
        return "rescheduled"
    if isinstance(exc, GaveUp):
        return "gave_up"
    return "failure"


@contextmanager
def task_run(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Around one run of a Celery task: its ids in every log line, its outcome and time counted, one flush.

    A ``process_article`` run that fails (gave up, or crashed) also counts its article as failed.
    """
    request = getattr(task, "request", None)
    ids = _task_ids(task, args, kwargs)
    started = time.perf_counter()
    error: BaseException | None = None
    with logs.task_context(task_id=getattr(request, "id", None), task=task.name, **ids):
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            outcome = _outcome(error)
            task_finished(task.name, outcome, time.perf_counter() - started)
            if outcome in ("failure", "gave_up") and task.name == "syndicate.process_article":
                count_article(str(logs.current_context().get("source", "unknown")), "failed")
            flush()
