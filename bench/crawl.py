"""Crawl benchmark: a local site of 1,000 articles across 50 listing pages and a sitemap, with a
robots.txt ``Crawl-delay``; first crawl and unchanged re-crawl with 1 and 4 worker processes.

Prints requests sent, 304s, bytes, requests per article and wall time against the floor the
politeness rule allows (requests x Crawl-delay: every request to the one host must be that far
apart, however many workers there are). Each worker process has its own Runtime and Fetcher; the
per-host limit and the robots.txt cache are shared through a real Redis (part A's
``worker.fetch.hostlimit``). A ``HostBusy`` is where a Celery task would reschedule itself; here
the process waits the ``retry_after`` it was given, which is what the reschedule amounts to.

    .venv/bin/python bench/crawl.py [--articles 1000] [--pages 50] [--delay 0.02]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.model import parse_config
from config.settings import Settings
from tests.pipeline.sitegen import NewsSite, Story
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker import pipeline
from worker.errors import HostBusy
from worker.runtime import Runtime
from worker.store.db import upgrade


def runtime(config: dict[str, Any], database_url: str, redis_url: str) -> Runtime:
    """A Runtime like a worker's, on the bench database and Redis."""
    import redis

    settings = Settings(database_url=database_url, redis_url=redis_url, public_url="http://bench.test")
    return Runtime(
        settings=settings, config=parse_config(config), redis_client=redis.Redis.from_url(redis_url)
    )


def patient(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a stage; on HostBusy wait as told and run it again (the task's reschedule)."""
    while True:
        try:
            return call(*args, **kwargs)
        except HostBusy as busy:
            time.sleep(busy.retry_after or 0.01)


def worker(job: tuple[dict[str, Any], str, str, list[int]]) -> int:
    """One worker process: process its share of the article ids."""
    config, database_url, redis_url, ids = job
    rt = runtime(config, database_url, redis_url)
    for article_id in ids:
        patient(pipeline.process_article, rt, article_id)
    return len(ids)


def run(kind: str, processes: int, args: argparse.Namespace, redis_url: str) -> list[dict[str, Any]]:
    """First crawl and unchanged re-crawl of one source kind with ``processes`` workers."""
    rows = []
    with HTTPTestServer(root=None) as server:
        site = NewsSite(server, per_page=args.articles // args.pages)
        site.stories = [
            Story(f"bench-story-number-{n}", f"Bench story number {n}") for n in range(args.articles)
        ]
        site.extra["/robots.txt"] = (f"User-agent: *\nCrawl-delay: {args.delay}\n".encode(), "text/plain")
        site.install()
        tmp = tempfile.mkdtemp(prefix="syn-bench-crawl-")
        database_url = f"sqlite:///{tmp}/bench.db"
        upgrade(database_url)
        url = server.url("/news/") if kind == "listing" else server.url("/sitemap.xml")
        config = {
            "fetch": {"allow_hosts": [server.host_port], "timeout": "10s"},
            "sources": [
                {
                    "name": "bench",
                    "kind": kind,
                    "url": url,
                    "backfill": args.articles,
                    "options": {"max_pages": args.pages, "max_articles": args.articles},
                }
            ],
        }
        rt = runtime(config, database_url, redis_url)
        rt.redis_client.flushdb()
        with rt.session() as session:
            source_id = pipeline.sync_sources(session, rt.config)["bench"]
        for phase in ("first crawl", "unchanged re-crawl"):
            server.requests.clear()
            started = time.monotonic()
            ids = patient(pipeline.crawl_source, rt, source_id, force=True)
            if phase == "unchanged re-crawl":
                # Every stored article is announced unchanged; ask each page anyway (page-watch load).
                ids = ids or []
            chunks = [ids[i::processes] for i in range(processes)]
            with multiprocessing.get_context("spawn").Pool(processes) as pool:
                pool.map(worker, [(config, database_url, redis_url, c) for c in chunks if c])
            wall = time.monotonic() - started
            sent = [r for r in server.requests if r.path != "/robots.txt"]
            rows.append(
                {
                    "kind": kind,
                    "workers": processes,
                    "phase": phase,
                    "requests": len(sent),
                    "304s": sum(1 for r in sent if r.header("If-None-Match")),
                    "articles": len(ids),
                    "wall": wall,
                    "floor": len(sent) * args.delay,
                }
            )
    return rows


def main() -> None:
    """Run every combination and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.02, help="robots.txt Crawl-delay in seconds")
    args = parser.parse_args()
    redis_server = RedisServer().start()
    try:
        rows = [
            r for kind in ("listing", "sitemap") for n in (1, 4) for r in run(kind, n, args, redis_server.url)
        ]
    finally:
        redis_server.stop()
    print(f"\n{args.articles} articles, {args.pages} listing pages, Crawl-delay {args.delay}s\n")
    print(
        "| source | workers | phase | requests | conditional (304) | articles fetched"
        " | req/article | wall s | floor s | wall/floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = r["requests"] / args.articles
        ratio = r["wall"] / r["floor"] if r["floor"] else float("nan")
        print(
            f"| {r['kind']} | {r['workers']} | {r['phase']} | {r['requests']} | {r['304s']} "
            f"| {r['articles']} | {per:.3f} | {r['wall']:.2f} | {r['floor']:.2f} | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
