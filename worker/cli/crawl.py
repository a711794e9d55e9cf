"""Pipeline commands run now: ``scrape`` (fetch and normalize pages), ``crawl`` a source, ``feeds build``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from worker.cli import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    redacted,
)
from worker.cli.common import (
    check_source,
    emit,
    load,
    progress,
    require_redis,
)
from worker.cli.db import prepare_database
from worker.cli.share import deliver_inline
from worker.crawl import run_crawl
from worker.errors import HostBusy, SyndicateError
from worker.fetch import Fetcher, FetchResult
from worker.normalize import normalize
from worker.outbox.planning import plan_shares
from worker.process import process_article
from worker.render import render_current
from worker.runtime import get_runtime
from worker.store.models import Source
from worker.stories.assign import assign_article
from worker.tasks import crawl_source

R = TypeVar("R")


def cmd_scrape(args: argparse.Namespace) -> int:
    """Normalize pages now (fetched URLs and saved files); print one article JSON object per line."""

    jobs: list[tuple[str, Path | None]] = [(url, None) for url in args.urls]
    jobs += [(url, Path(path)) for path, url in args.saved or []]
    if not jobs:
        print("nothing to scrape: give URLs or --saved FILE URL", file=sys.stderr)
        return EXIT_USAGE
    for url in args.urls:
        problem = _not_a_url(url)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    # A config that does not load is the command's error (exit 3), not each page's.
    fetcher: Fetcher | None = Fetcher(load(args)[1].fetch) if args.urls else None
    failed = 0
    try:
        for url, path in progress(args, jobs, total=len(jobs), desc="pages", unit="page"):
            try:
                if path is not None:
                    article = normalize(path.read_bytes(), url, content_type=args.content_type)
                else:
                    assert fetcher is not None  # made above whenever there are URLs
                    result = _fetch_in_turn(fetcher, url)
                    article = normalize(result.body, result.final_url, content_type=result.content_type)
            except Exception as exc:  # one bad page must not stop the others: it gets its error line
                failed += 1
                reason = (
                    str(exc) if isinstance(exc, SyndicateError | OSError) else f"{type(exc).__name__}: {exc}"
                )
                emit(f"{url}: {reason}", err=True)
                emit(json.dumps({"url": url, "error": reason}, ensure_ascii=False))
                continue
            data = article.to_dict()
            if not args.full:
                data.pop("content_html", None)
            emit(json.dumps(data, ensure_ascii=False))
    finally:
        if fetcher is not None:
            fetcher.close()
    return EXIT_ERROR if failed else EXIT_OK


def _not_a_url(arg: str) -> str | None:
    """Why ``arg`` cannot be scraped as a URL (a saved file, a bare host name), or None to try it.

    Only the missing ``scheme://`` is judged here; the fetcher's guard judges the rest.
    """
    if "://" in arg:
        return None
    if Path(arg).exists():
        return (
            f"{arg} is a file, not a URL: to normalize a saved page, give the URL it came from: "
            f"syndicate scrape --saved {arg} URL"
        )
    return f"{arg} is not a URL: give http://... or https://..., or --saved FILE URL for a saved page"


# Slack over the longest wait a host may ask for (its Crawl-delay up to fetch.max_crawl_delay): the
# turn of a host this command has just used (its robots.txt) comes within the interval plus this.
TURN_SLACK = 5.0


def _fetch_in_turn(fetcher: Fetcher, url: str) -> FetchResult:
    """``fetcher.get(url)``, waiting for the host's turn as a polite crawler does, for a bounded time.

    Workers reschedule a task whose host is busy; an interactive command has nothing else to do, so
    it sleeps until the host's next turn (telling stderr when that is a second or more), giving up
    only after the longest interval the fetch policy allows plus :data:`TURN_SLACK`.
    """
    policy = fetcher.policy
    budget = max(policy.host_interval, policy.max_crawl_delay) + TURN_SLACK
    deadline = time.monotonic() + budget
    while True:
        try:
            return fetcher.get(url)
        except HostBusy as busy:
            wait = max(busy.retry_after or 1.0, 0.01)
            if time.monotonic() + wait > deadline:
                raise HostBusy(f"{busy} (waited {budget:g}s at most)", url, wait) from None
            if wait >= 1.0:
                emit(f"{url}: waiting {wait:.1f}s for the host's turn ({busy})", err=True)
            time.sleep(wait)


def cmd_crawl(args: argparse.Namespace) -> int:
    """Enqueue one crawl of a source now (or run the whole pipeline in this process with --inline)."""
    settings, config = load(args)
    if (refused := check_source(config, args.source)) is not None:
        return refused
    ids = prepare_database(settings, config)
    paused = _pause_of(ids[args.source])
    if paused is not None:
        print(
            f"error: source {args.source} is paused (since {paused[0]:%Y-%m-%d %H:%M} UTC"
            + (f": {paused[1]}" if paused[1] else "")
            + f"); `syndicate source resume {args.source}` first",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.inline:
        rt = get_runtime()
        report = _patiently(run_crawl, rt, ids[args.source], force=True)
        if report.failed:
            print(f"error: crawl of {args.source} failed: {report.error}", file=sys.stderr)
            return EXIT_ERROR
        feeds: set[str] = set()
        sent = 0
        for article_id in progress(args, report.ids, total=len(report.ids), desc="articles", unit="article"):
            outcome = _patiently(process_article, rt, article_id)
            feeds.update(outcome.feeds)
            if outcome.status == "ready":  # its story before its feeds and shares, as a worker does
                feeds.update(assign_article(rt, article_id, outcome.changed).feeds)
            if outcome.share:
                for share_id in plan_shares(rt, article_id):
                    sent += deliver_inline(rt, share_id) == "sent"
        for feed in progress(args, sorted(feeds), total=len(feeds), desc="feeds", unit="feed"):
            render_current(rt, feed)
        print(
            f"{args.source}: {len(report.ids)} articles processed, feeds {sorted(feeds)}, {sent} shares sent"
            f" ({report.requests} requests, {report.not_modified} not modified)"
        )
        return 0
    require_redis(settings)

    crawl_source.delay(ids[args.source])
    print(f"enqueued a crawl of {args.source} on {redacted(settings.effective_redis_url)}")
    return EXIT_OK


def _patiently(stage: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run ``stage`` in this process, waiting out a busy host (shared per-host limits, Crawl-delay).

    A worker reschedules the task instead; here nothing else would run it, so the command waits.
    """

    for _attempt in range(600):
        try:
            return stage(*args, **kwargs)
        except HostBusy as busy:
            time.sleep(min(max(busy.retry_after or 1.0, 0.05), 30.0))
    return stage(*args, **kwargs)


def _pause_of(source_id: int) -> tuple[datetime, str | None] | None:
    """``(paused_at, reason)`` of a paused source, None for one that runs."""

    with get_runtime().session() as session:
        source = session.get(Source, source_id)
        if source is None or source.paused_at is None:
            return None
        return source.paused_at, source.pause_reason


def cmd_feeds_build(args: argparse.Namespace) -> int:
    """Render every configured feed now, in this process."""
    settings, config = load(args)
    prepare_database(settings, config)

    for feed in progress(args, config.feeds, total=len(config.feeds), desc="feeds", unit="feed"):
        changed = render_current(get_runtime(), feed.name)
        state = "updated" if changed else "unchanged"
        emit(f"{feed.name}: {state}  {settings.base_url}/feeds/{feed.name}.rss  .atom  .json")
    return EXIT_OK
