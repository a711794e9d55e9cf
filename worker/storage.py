"""A full disk, told apart from other failures, answered with 503 + Retry-After and shown everywhere.

With ``var/`` (or the database's disk) full, SQLite raises "database or disk is full", PostgreSQL
``DiskFull`` (SQLSTATE 53100) and file writes ``OSError`` ENOSPC or EDQUOT. Those used to surface as a
bare 500 while ``/healthz`` said ok. Here:

- :func:`is_storage_full` recognises them anywhere in an exception's chain;
- a refused write is recorded in Redis (:func:`note_refused`: the place and the reason, kept for
  :data:`REFUSAL_MEMORY` seconds, cleared by the next write that succeeds there) and counted in
  ``syndicate_storage_refused_writes_total``;
- :func:`storage_state` is what ``/healthz``, ``/api/status``, the status page, ``syndicate status``
  and ``/metrics`` show: "full" while a watched directory (``var/``, a SQLite database's directory)
  has less than :data:`MIN_FREE_BYTES` free or a refusal is remembered, with the reason.

Nothing is half-written: the refused transaction is rolled back, so the client's retry (after
``Retry-After``) stores the article whole.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from worker import metrics

log = logging.getLogger(__name__)

# Below this much free space a watched directory counts as full: SQLite needs room for its journal.
MIN_FREE_BYTES = 1 << 20
# How long a refused write keeps the state "full" unless a later write succeeds there.
REFUSAL_MEMORY = 120
RETRY_AFTER_SECONDS = 60
REFUSALS_KEY = "syndicate:storage:refused"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_PG_DISK_FULL = "53100"


def is_storage_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, its DB-API original or anything in its cause/context chain is a full disk."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or "database or disk is full" in str(exc)
        ):
            return True
        if getattr(exc, "sqlstate", None) == _PG_DISK_FULL or getattr(exc, "pgcode", None) == _PG_DISK_FULL:
            return True
        original = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(original, BaseException) and id(original) not in seen:
            if is_storage_full(original):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe(exc: BaseException) -> str:
    """A one-line reason without SQL or parameters (a SQLAlchemy message carries both)."""
    original = getattr(exc, "orig", None)
    text = str(original if isinstance(original, BaseException) else exc).splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# The places where this process had a write refused, so that its next success there clears the
# refusal (a worker's tasks would otherwise pay a Redis round trip per run to clear nothing).
_refused_here: set[str] = set()


def note_refused(client: Any, where: str, exc: BaseException) -> None:
    """Record and count a write refused for lack of space at ``where`` (``ingest``, a task name, ...)."""
    _refused_here.add(where)
    reason = describe(exc)
    log.error("storage full: %s refused: %s", where, reason)
    metrics.count_refused_write(where, client)
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hset(REFUSALS_KEY, where, json.dumps({"at": time.time(), "reason": reason}))
        pipe.expire(REFUSALS_KEY, REFUSAL_MEMORY)
        pipe.execute()
    except Exception as error:  # Redis down too: the log line and the 503 remain
        log.warning("could not record the refused write in Redis: %s", error)


def note_ok(client: Any, where: str) -> None:
    """A write at ``where`` succeeded: forget its refusal (one ``HDEL``; nothing when Redis is down)."""
    if client is None:
        return
    try:
        client.hdel(REFUSALS_KEY, where)
    except Exception as error:
        log.debug("could not clear the storage refusal: %s", error)


def forget_refusal(client: Callable[[], Any], where: str) -> None:
    """A write at ``where`` succeeded: clear the refusal this process recorded there, if it did."""
    if where in _refused_here:
        _refused_here.discard(where)
        note_ok(client(), where)


def watched_paths(settings: Any) -> dict[str, Path]:
    """The local directories whose free space matters: ``var/`` and a SQLite database's directory."""
    paths = {"var": Path(settings.var_dir)}
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        paths["database"] = Path(url.database).resolve().parent
    return paths


def free_bytes(settings: Any) -> dict[str, int]:
    """Free bytes per watched directory (a missing one is measured at its nearest existing parent)."""
    out: dict[str, int] = {}
    for name, path in watched_paths(settings).items():
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            out[name] = shutil.disk_usage(probe).free
        except OSError:
            continue
    return out


def refusals(client: Any) -> dict[str, dict[str, Any]]:
    """The remembered refused writes, newest first: ``{where: {"at": epoch, "reason": ...}}``."""
    if client is None:
        return {}
    raw = client.hgetall(REFUSALS_KEY)
    now = time.time()
    out = {}
    for where, value in raw.items():
        entry = json.loads(value)
        if now - float(entry["at"]) <= REFUSAL_MEMORY:
            key = where.decode() if isinstance(where, bytes) else str(where)
            out[key] = entry
    return dict(sorted(out.items(), key=lambda item: -float(item[1]["at"])))


def storage_state(settings: Any, client: Any = None) -> dict[str, Any]:
    """``{"state": "ok"|"full", "reason", "free_bytes": {name: bytes}, "refused": {where: ...}}``."""
    try:
        free = free_bytes(settings)
    except Exception as exc:  # a health check must answer whatever the settings hold
        log.warning("could not measure free space: %s", exc)
        free = {}
    try:
        refused = refusals(client)
    except Exception as exc:  # Redis down: the free space still tells
        log.debug("could not read storage refusals: %s", exc)
        refused = {}
    reasons = [f"{name} has {n // 1024} KiB free" for name, n in free.items() if n < MIN_FREE_BYTES]
    for where, entry in refused.items():
        ago = max(0, int(time.time() - float(entry["at"])))
        reasons.append(f"{where} refused {ago} s ago: {entry['reason']}")
    return {
        "state": "full" if reasons else "ok",
        "reason": "; ".join(reasons) or None,
        "free_bytes": free,
        "refused": refused,
    }
