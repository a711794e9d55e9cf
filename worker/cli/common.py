"""What the commands share: the settings and config loaded into the runtime, the database, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import redis
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from config import Config, Settings, load_config
from config.settings import load_settings
from worker import redisclient
from worker.cli import (
    EXIT_USAGE,
    redacted,
)
from worker.errors import Unreachable
from worker.runtime import Runtime, set_runtime

T = TypeVar("T")


def load(args: argparse.Namespace, *, secrets: bool = True) -> tuple[Settings, Config]:
    """Settings and config, and this process's runtime built from them.

    ``secrets=False`` is for read-only commands: an unset ``${ENV_VAR}`` is a warning, not an error,
    and an endpoint without its credentials shows as not configured (only sending needs them).
    """

    settings = load_settings()
    path = config_path(args, settings)
    config = load_config(path, secrets=secrets)
    warn_missing_secrets(config, "")

    # Every process shares pacing, host limits and the robots.txt cache through Redis: a runtime
    # without a client would quietly keep them per process (redis-py connects on first use).
    client = redisclient.connect(settings.effective_redis_url)
    set_runtime(Runtime(settings=settings, config=config, redis_client=client))
    return settings, config


def config_path(args: argparse.Namespace, settings: Settings) -> Path:
    """The config file a command reads: ``--config``, else ``$SYNDICATE_CONFIG`` (or the example)."""
    return Path(getattr(args, "config", None) or settings.config_path)


def warn_missing_secrets(config: Config, why: str) -> None:
    """One warning per unset ``${ENV_VAR}`` (read with ``secrets=False``), with its key path."""
    for missing in config.missing_secrets:
        print(f"warning: {missing}{why}", file=sys.stderr)


# Whether this process has drawn a progress bar: :func:`emit` then writes through tqdm.
_bar_drawn = False


def progress(
    args: argparse.Namespace, items: Iterable[T], *, total: int, desc: str, unit: str
) -> Iterator[T]:
    """``items`` with a tqdm bar and counts on stderr when it is a terminal; plain ``items`` otherwise.

    Off the terminal (a pipe, a log file, compose) nothing is drawn, so what is read stays parseable;
    ``--no-progress`` turns the bar off on a terminal too. Print with :func:`emit` meanwhile.
    """
    global _bar_drawn
    if getattr(args, "no_progress", False) or not sys.stderr.isatty():
        return iter(items)
    _bar_drawn = True
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

    with logging_redirect_tqdm():
        yield from bar


def emit(line: str, *, err: bool = False) -> None:
    """Print one line (stdout, or stderr with ``err``) without tearing a progress bar, and flush it."""
    stream = sys.stderr if err else sys.stdout
    if _bar_drawn:  # a bar may be drawn: tqdm clears it, writes the line, redraws it
        tqdm.write(line, file=stream)
    else:
        print(line, file=stream)
    stream.flush()


def require_redis(settings: Settings) -> None:
    """Fail fast with one line when the broker is down (Celery would retry, then print a traceback)."""

    client = redisclient.connect(settings.effective_redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        raise Unreachable(
            f"Redis at {redacted(settings.effective_redis_url)} is unreachable ({type(exc).__name__}); "
            "is it running? (REDIS_URL)"
        ) from None
    finally:
        client.close()


def check_source(config: Config, name: str) -> int | None:
    """None when ``name`` is a configured source; else say so (listing those that are): a usage error."""
    if any(source.name == name for source in config.sources):
        return None
    names = ", ".join(s.name for s in config.sources) or "none configured"
    print(f"error: no source named {name!r} (sources: {names})", file=sys.stderr)
    return EXIT_USAGE


def check_endpoint(config: Config, name: str) -> int | None:
    """None when ``name`` is a configured endpoint; else :func:`no_endpoint`."""
    if any(endpoint.name == name for endpoint in config.endpoints):
        return None
    return no_endpoint(config, name)


def no_endpoint(config: Config, name: str) -> int:
    """Say that ``name`` is not a configured endpoint (listing those that are): a usage error."""
    names = ", ".join(e.name for e in config.endpoints) or "none configured"
    print(f"error: no endpoint named {name!r} (endpoints: {names})", file=sys.stderr)
    return EXIT_USAGE
