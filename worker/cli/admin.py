"""Config and database commands: ``check-config``, ``migrate``, ``reload``, ``status``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config import ConfigError, load_config
from config.settings import load_settings
from config.watch import file_version
from worker import redisclient
from worker.cli import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    flush_stdout,
    redacted,
)
from worker.cli.common import (
    config_path,
    load,
    warn_missing_secrets,
)
from worker.cli.db import prepare_database
from worker.ops import configwatch
from worker.ops.status import config_lines, render_status_text, snapshot
from worker.runtime import get_runtime
from worker.storage import storage_state


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file and print every problem with its key path."""

    settings = load_settings()
    path = Path(args.file or getattr(args, "config", None) or settings.config_path)
    try:
        config = load_config(path, secrets=not args.no_secrets)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    warn_missing_secrets(config, " (the worker needs it to send)")
    unset = f"; {len(config.missing_secrets)} secret(s) not set" if config.missing_secrets else ""
    print(
        f"{path}: ok ({len(config.sources)} sources, {len(config.feeds)} feeds, "
        f"{len(config.endpoints)} endpoints{unset})"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply database migrations and sync sources from the config."""
    settings, config = load(args)
    ids = prepare_database(settings, config)
    print(f"database ready: {settings.effective_database_url} ({len(ids)} sources)")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Tell every worker, beat and web process to re-read the config file now, and wait for them."""

    settings = load_settings()
    path = config_path(args, settings)
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


def cmd_status(args: argparse.Namespace) -> int:
    """Print sources, articles, feeds and the share outbox backlog."""
    try:
        settings, config = load(args, secrets=False)
    except ConfigError as exc:
        # The running processes keep their last good config: say which, beside what is wrong.
        return _invalid_config_status(args, exc)
    prepare_database(settings, config)

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
        flush_stdout()
        print(
            f"error: Redis at {redacted(settings.effective_redis_url)} is unreachable ({redis_error}): "
            "no crawl or share runs until it is back; the above is what the database holds (REDIS_URL)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    return EXIT_OK


def _invalid_config_status(args: argparse.Namespace, exc: ConfigError) -> int:
    """``status`` when the config file is invalid: every problem, then the config each process runs."""

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
