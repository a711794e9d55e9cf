"""Crawl benchmark through real Celery workers: polite first crawl and unchanged re-crawl.

A local site (``tests/pipeline/sitegen.py``) with N articles across P listing pages linked by
``rel=next`` and a sitemap, whose robots.txt asks for a ``Crawl-delay``. For a ``listing`` and a
``sitemap`` source, and for 1 and 4 Celery worker processes, each run starts a real Redis-backed
``syndicate worker`` setup on a fresh SQLite database, enqueues the crawl with ``syndicate crawl``
(as an operator does), waits until every article is ``ready`` and the queues are drained, then does
the same again for the unchanged re-crawl. What the site received is read from its own request log:
requests (robots.txt included), 304 answers, bytes sent (status line, headers and body, as written to
the socket), article pages fetched.

"4 workers" are four ``syndicate worker --concurrency 1`` processes by default (``--layout pool``: one
``syndicate worker --concurrency 4``): four Celery consumers that each hold their own countdown tasks
and their own Fetcher, like four machines, which is the case the Redis-kept host limit exists for.

The floor is requests x Crawl-delay: the per-host limit (kept in Redis, shared by every worker) lets
one request reach the host per Crawl-delay, however many workers there are. A task that meets a busy
host is rescheduled with a countdown by ``worker.tasks.PipelineTask``; nothing sleeps in the bench.

    .venv/bin/python bench/crawl.py                       # 1,000 articles, 50 pages, Crawl-delay 0.05 s
    .venv/bin/python bench/crawl.py --articles 200 --pages 10 --delay 0.1 --layout pool
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/crawl.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import create_engine, func, select  # noqa: E402

from tests.pipeline.sitegen import NewsSite, Story  # noqa: E402
from tests.support.httpserver import (  # noqa: E402
    HTTPTestServer,
    _ignore_client_errors,
    _RequestHandler,
)
from tests.support.services import RedisServer, Syndicate  # noqa: E402

SOURCE = "bench"
POLL_SECONDS = 0.05
READY_TIMEOUT = 90.0
KINDS = ("listing", "sitemap")
PHASES = ("first crawl", "unchanged re-crawl")
# Arrival times at the site jitter by a few ms around the limiter's grants; closer than this is a breach.
TOO_CLOSE = 0.8


class BenchError(RuntimeError):
    """A run did not finish as expected (the message carries the worker logs)."""


# ------------------------------------------------------------------------------ the counted site


@dataclass(frozen=True)
class Hit:
    """One answer the site sent: path, status, bytes written to the socket, and when it arrived."""

    path: str
    status: int
    bytes: int
    at: float


class _CountingWriter:
    """Wraps a handler's ``wfile`` and counts what is written to it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _CountingHandler(_RequestHandler):
    """The test server's handler, logging status and bytes of every answer in ``owner.hits``."""

    owner: CountingServer

    def setup(self) -> None:
        super().setup()
        self.wfile = _CountingWriter(self.wfile)  # type: ignore[arg-type,assignment]
        self._status = 0

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _handle(self, send_body: bool = True) -> None:
        arrived = time.monotonic()
        super()._handle(send_body)
        wfile = self.wfile
        sent = wfile.count if isinstance(wfile, _CountingWriter) else 0
        self.owner.record(Hit(self.path.split("?", 1)[0], self._status, sent, arrived))


class CountingServer(HTTPTestServer):
    """:class:`HTTPTestServer` whose log also holds each answer's status, size and arrival time."""

    def __init__(self) -> None:
        """Routes only (the generated site registers them)."""
        super().__init__(root=None)
        self.hits: list[Hit] = []
        self._hits_lock = threading.Lock()

    def start(self) -> CountingServer:
        """Like :meth:`HTTPTestServer.start`, with the counting handler."""
        handler = type("CountingBoundHandler", (_CountingHandler,), {"owner": self})
        httpd = ThreadingHTTPServer((self.host, 0), handler)
        httpd.daemon_threads = True
        httpd.handle_error = _ignore_client_errors  # type: ignore[method-assign]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="bench-site", daemon=True
        )
        self._thread.start()
        return self

    def record(self, hit: Hit) -> None:
        """Log one answer."""
        with self._hits_lock:
            self.hits.append(hit)

    def take(self) -> list[Hit]:
        """The answers logged since the last call, and start a new log."""
        with self._hits_lock:
            hits, self.hits = self.hits, []
        return hits


def build_site(server: CountingServer, articles: int, pages: int, delay: float) -> NewsSite:
    """N stories over ``pages`` listing pages, a sitemap, and robots.txt with ``Crawl-delay``."""
    site = NewsSite(server, per_page=-(-articles // pages))
    site.stories = [Story(f"bench-story-number-{n}", f"Bench story number {n}") for n in range(articles)]
    site.extra["/robots.txt"] = (f"User-agent: *\nCrawl-delay: {delay:g}\n".encode(), "text/plain")
    site.install()
    return site


# ------------------------------------------------------------------------------------ one run


@dataclass
class Row:
    """One line of the table."""

    kind: str
    workers: int
    phase: str
    requests: int
    not_modified: int
    bytes: int
    fetched: int
    articles: int
    wall: float
    floor: float
    min_gap: float
    too_close: int
    robots: int


@dataclass
class Run:
    """One source kind with one worker layout: its dir, config, database, workers."""

    kind: str
    workers: int
    layout: str
    args: argparse.Namespace
    site: NewsSite
    server: CountingServer
    redis_url: str
    tmp: Path
    syn: Syndicate | None = None
    hostnames: list[str] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        """The run's fresh SQLite file."""
        return f"sqlite:///{self.tmp / 'syndicate.db'}"

    def prepare(self) -> None:
        """Write the config, flush Redis, migrate the fresh database."""
        self.tmp.mkdir(parents=True)
        url = self.server.url("/news/") if self.kind == "listing" else self.server.url("/sitemap.xml")
        config = self.tmp / "syndicate.yaml"
        config.write_text(
            f"""
fetch:
  allow_hosts: ["{self.server.host_port}"]
  timeout: 10s
sources:
  - name: {SOURCE}
    kind: {self.kind}
    url: {url}
    schedule: 1d
    backfill: {self.args.articles}
    options: {{max_pages: {self.args.pages}, max_articles: {self.args.articles}}}
""",
            encoding="utf-8",
        )
        redis.Redis.from_url(self.redis_url).flushdb()
        self.syn = Syndicate.make(
            self.tmp,
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "SYNDICATE_CONFIG": str(config),
                "SYNDICATE_VAR_DIR": str(self.tmp / "var"),
                "SYNDICATE_LOG_LEVEL": "INFO",
            },
        )
        migrated = self.syn.run("migrate")
        if migrated.returncode != 0:
            raise BenchError(f"`syndicate migrate` failed: {migrated.stderr[-3000:]}")

    def start_workers(self) -> None:
        """Start the workers and wait until each answers a Celery ping."""
        assert self.syn is not None
        if self.layout == "pool":
            plan = [("worker-0", self.workers)]
        else:
            plan = [(f"worker-{i}", 1) for i in range(self.workers)]
        for name, concurrency in plan:
            hostname = f"bench-crawl-{self.kind}-{self.workers}-{name}@localhost"
            self.syn.start(name, "worker", "--concurrency", str(concurrency), "--hostname", hostname)
            self.hostnames.append(hostname)
        from worker.app import app

        app.conf.broker_url = self.redis_url
        waiting = set(self.hostnames)
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting and time.monotonic() < deadline:
            self.check_alive()
            for answer in app.control.ping(destination=sorted(waiting), timeout=0.5) or []:
                waiting -= set(answer)
        if waiting:
            raise BenchError(f"no ping from {sorted(waiting)} in {READY_TIMEOUT:.0f}s:\n{self.syn.logs()}")

    def check_alive(self) -> None:
        """Raise if a worker process exited."""
        assert self.syn is not None
        for name, proc in self.syn.procs:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{self.syn.logs()}")

    def crawl(self) -> float:
        """``syndicate crawl SOURCE``; the monotonic time it printed that the crawl is enqueued."""
        assert self.syn is not None
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "crawl", SOURCE],
            env=self.syn.env,
            cwd=self.syn.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the CLI prints one line and exits; PYTHONUNBUFFERED is set
        t0 = time.monotonic()
        _out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or b"enqueued a crawl" not in line:
            raise BenchError(f"`syndicate crawl {SOURCE}` failed ({proc.returncode}): {line!r} {err!r}")
        return t0

    def state(self, engine: Any) -> tuple[int, int, int]:
        """(ready articles, all articles, crawls finished) in the database."""
        from worker.store.models import Article, Source

        with engine.connect() as conn:
            ready = conn.scalar(select(func.count()).select_from(Article).where(Article.status == "ready"))
            total = conn.scalar(select(func.count()).select_from(Article))
            crawls = conn.scalar(select(Source.crawl_count).where(Source.name == SOURCE))
        return int(ready or 0), int(total or 0), int(crawls or 0)

    def drained(self, client: redis.Redis) -> bool:
        """Every queue empty and nothing unacked (tasks held for a countdown stay in ``unacked``)."""
        from worker.app import QUEUES

        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
        pipe.hlen("unacked")
        return sum(pipe.execute()) == 0

    def phase(self, phase: str, crawls_before: int) -> tuple[Row, int]:
        """One crawl, timed from enqueue until every article is ready, the crawl done, queues empty."""
        engine = create_engine(self.database_url)
        client = redis.Redis.from_url(self.redis_url)
        self.server.take()
        t0 = self.crawl()
        deadline = t0 + self.args.timeout
        while True:
            ready, total, crawls = self.state(engine)
            if crawls > crawls_before and ready == total == self.args.articles and self.drained(client):
                end = time.monotonic()
                break
            if time.monotonic() > deadline:
                assert self.syn is not None
                raise BenchError(
                    f"{self.kind}/{self.workers} {phase}: {ready}/{total} ready, crawls {crawls} after "
                    f"{self.args.timeout:.0f}s:\n{self.syn.logs()}"
                )
            self.check_alive()
            time.sleep(POLL_SECONDS)
        engine.dispose()
        hits = sorted(self.server.take(), key=lambda h: h.at)
        with open(self.tmp / "requests.log", "a", encoding="utf-8") as out:  # kept with --keep
            out.writelines(f"{phase}\t{h.at - t0:.4f}\t{h.status}\t{h.bytes}\t{h.path}\n" for h in hits)
        story_paths = {s.path for s in self.site.stories}
        gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
        row = Row(
            kind=self.kind,
            workers=self.workers,
            phase=phase,
            requests=len(hits),
            not_modified=sum(1 for h in hits if h.status == 304),
            bytes=sum(h.bytes for h in hits),
            fetched=sum(1 for h in hits if h.status == 200 and h.path in story_paths),
            articles=self.args.articles,
            wall=end - t0,
            floor=len(hits) * self.args.delay,
            min_gap=min(gaps) if gaps else float("nan"),
            too_close=sum(1 for g in gaps if g < self.args.delay * TOO_CLOSE),
            robots=sum(1 for h in hits if h.path == "/robots.txt"),
        )
        return row, crawls

    def execute(self) -> list[Row]:
        """Prepare, start the workers, run both phases, stop the workers."""
        self.prepare()
        self.start_workers()
        rows = []
        crawls = 0
        for phase in PHASES:
            row, crawls = self.phase(phase, crawls)
            rows.append(row)
            print(
                f"{row.kind} / {row.workers} workers / {row.phase}: {row.requests} requests, "
                f"{row.not_modified} 304s, {row.bytes:,} bytes, wall {row.wall:.2f}s, floor {row.floor:.2f}s",
                flush=True,
            )
        self.stop()
        return rows

    def stop(self) -> None:
        """Warm-stop every worker this run started."""
        if self.syn is not None:
            self.syn.stop()
            self.syn.procs.clear()


# ------------------------------------------------------------------------------------ report


def table(rows: list[Row]) -> str:
    """The Markdown table."""
    lines = [
        "| source | workers | phase | requests | 304s | bytes | articles fetched | req/article "
        "| wall s | floor s | wall/floor |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.wall / r.floor:.2f}" if r.floor else "n/a"
        lines.append(
            f"| {r.kind} | {r.workers} | {r.phase} | {r.requests:,} | {r.not_modified:,} | {r.bytes:,} "
            f"| {r.fetched:,} | {r.requests / r.articles:.3f} | {r.wall:.2f} | {r.floor:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000, help="articles on the site")
    parser.add_argument("--pages", type=int, default=50, help="listing pages they are spread over")
    parser.add_argument("--delay", type=float, default=0.05, help="robots.txt Crawl-delay in seconds")
    parser.add_argument(
        "--layout",
        choices=("processes", "pool"),
        default="processes",
        help="N workers as N `syndicate worker --concurrency 1` processes (default) "
        "or one `syndicate worker --concurrency N`",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4], help="worker counts to run")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one phase may take")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (configs, worker logs, databases, each run's requests.log)",
    )
    args = parser.parse_args(argv)
    if args.articles < 1 or args.pages < 1 or args.delay <= 0:
        parser.error("--articles and --pages must be at least 1, --delay above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every combination and print the table."""
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="syn-bench-crawl-"))
    previous = signal.signal(signal.SIGTERM, _terminate)
    redis_server = RedisServer().start()
    server = CountingServer().start()
    rows: list[Row] = []
    run: Run | None = None
    started = time.monotonic()
    print(
        f"{args.articles} articles, {args.pages} listing pages, robots.txt Crawl-delay {args.delay:g}s, "
        f"workers {args.workers} as {args.layout}",
        flush=True,
    )
    try:
        site = build_site(server, args.articles, args.pages, args.delay)
        for kind in args.kinds:
            for workers in args.workers:
                run_dir = tmp / f"{kind}-{workers}"
                run = Run(kind, workers, args.layout, args, site, server, redis_server.url, run_dir)
                rows += run.execute()
                run = None
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if run is not None:
            with contextlib.suppress(Exception):
                run.stop()
        server.stop()
        redis_server.stop()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    layout = (
        "N processes of `syndicate worker --concurrency 1`"
        if args.layout == "processes"
        else "one `syndicate worker --concurrency N`"
    )
    print(
        f"\n{args.articles} articles, {args.pages} listing pages, robots.txt Crawl-delay {args.delay:g}s, "
        f"workers: {layout}; total {time.monotonic() - started:.0f}s\n"
    )
    print(table(rows))
    print(
        f"\nPoliteness check: the closest two requests the site received, how many successive requests came "
        f"less than {TOO_CLOSE:g} x Crawl-delay apart, robots.txt fetches:"
    )
    for r in rows:
        gap = f"{r.min_gap:.3f}s" if r.requests > 1 else "n/a"
        print(
            f"- {r.kind} / {r.workers} / {r.phase}: closest {gap}, {r.too_close} of {max(r.requests - 1, 0)} "
            f"gaps too close; robots.txt {r.robots}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
