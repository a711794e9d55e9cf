"""Prometheus metrics for a deployment of several workers and web processes on several machines.

Why not prometheus-client's own registry: its counters live in the memory of the process that
counts. Syndicate counts in Celery pool children (forked, recycled, killed and restarted), in beat
and in every web process, possibly on several machines, while Prometheus scrapes one URL. The
client's ``multiprocess`` mode shares files through a directory, which works for the forks of one
machine only and leaves dead children's files to clean up. So:

* **Counters and histograms live in Redis**, which every process already talks to. A metric family
  is one hash, ``syndicate:metrics:<name>``, its fields the label values (joined by a tab) and, for
  histograms, ``<labels>\\tb<i>`` per bucket (not cumulative: each observation bumps exactly one
  bucket), ``<labels>\\tsum`` and ``<labels>\\tcount``. ``HINCRBY``/``HINCRBYFLOAT`` are atomic,
  so any number of writers add up exactly, and nothing is lost when a process dies after writing.
* **Writers buffer and pipeline.** A task's increments (its stage outcome, its fetch timings) are
  collected in memory and sent in one pipelined round trip when the task ends (:func:`flush`, called
  by :class:`~worker.tasks.PipelineTask`); outside a task (CLI, tests) :func:`record` sends at once.
  The web processes' feed requests are hot (thousands a second, answered from memory without any
  Redis call), so they are counted in process and flushed by a thread every :data:`FLUSH_SECONDS`
  (:class:`FeedRequestCounter`); a web process killed between flushes loses at most one second.
  A metrics write that fails is logged and dropped: metrics never fail the work they count.
* **Gauges are computed at scrape time** by the web process from their sources of truth: queue
  depth is ``LLEN`` of each kombu queue list, outbox backlog and the oldest pending share come from
  the database, next and last crawl per source from the sources table, heartbeat ages from
  :mod:`worker.heartbeat`. Nothing has to keep them current, and they cannot drift.
* ``/metrics`` renders a :class:`RedisCollector` (``CounterMetricFamily``, ``GaugeMetricFamily``,
  ``HistogramMetricFamily``) in a registry of its own, so any web process answers for the whole
  deployment and several of them answer the same.

Label cardinality is bounded by the configuration: sources, feeds and endpoints are the configured
names, and fetch hosts are the configured sources' hosts plus one ``other`` bucket for everything
else (pushed articles and lead images may name any host). Status codes are grouped as the code for
the usual ones and ``error`` for no answer at all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

import redis

log = logging.getLogger(__name__)

PREFIX = "syndicate:metrics:"
FLUSH_SECONDS = 1.0
FEED_REQUESTS = "syndicate_feed_requests"


def metric_key(name: str) -> str:
    """The Redis hash holding metric family ``name``."""
    return PREFIX + name


def label_field(*values: object) -> str:
    """The hash field of one label combination (tabs and newlines cannot occur in our label values)."""
    return "\t".join(str(v).replace("\t", " ").replace("\n", " ") for v in values)


class FeedRequestCounter:
    """Feed requests counted in process, added to Redis by a background thread every second.

    :meth:`count` is a dictionary update under an uncontended lock (well under a microsecond): the
    feed fast path never waits for Redis. The thread starts on the first count in each process (and
    again after a fork), so importing this module starts nothing.
    """

    def __init__(self, interval: float = FLUSH_SECONDS) -> None:
        self.interval = interval
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._pid = 0
        self._wake = threading.Event()

    def count(self, feed: str, status: int, client: redis.Redis) -> None:
        """Count one answered request for ``feed`` with HTTP ``status``."""
        with self._lock:
            self._counts[(feed, status)] += 1
        if self._pid != os.getpid():
            self._start(client)

    def _start(self, client: redis.Redis) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._client = client
        threading.Thread(target=self._run, name="feed-request-metrics", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Add the counts gathered since the last flush to Redis (kept for the next try if it fails)."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            client = self._client
        if not counts or client is None:
            return
        try:
            pipe = client.pipeline(transaction=False)
            for (feed, status), n in counts.items():
                pipe.hincrby(metric_key(FEED_REQUESTS), label_field(feed, status), n)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not add feed request counts to Redis: %s", exc)
            with self._lock:
                self._counts.update(counts)


#: The web process's feed request counter (one per process).
feed_requests = FeedRequestCounter()


def count_feed_request(feed: str, status: int, client: redis.Redis) -> None:
    """Count one feed request answered with ``status`` (flushed to Redis within a second)."""
    feed_requests.count(feed, status, client)


def feed_request_counts(client: redis.Redis) -> dict[tuple[str, str], int]:
    """Every web process's feed requests so far: ``(feed, status) -> count``."""
    raw = client.hgetall(metric_key(FEED_REQUESTS))
    out: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        feed, _, status = (field.decode() if isinstance(field, bytes) else field).rpartition("\t")
        out[(feed, status)] = int(value)
    return out


def feed_request_totals(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Feed name -> (requests answered, of which 304 Not Modified), counted across web processes.

    Counts reach Redis within :data:`FLUSH_SECONDS` of the request.
    """
    totals: dict[str, tuple[int, int]] = {}
    for (feed, status), n in feed_request_counts(client).items():
        requests, not_modified = totals.get(feed, (0, 0))
        totals[feed] = (requests + n, not_modified + (n if status == "304" else 0))
    return totals
