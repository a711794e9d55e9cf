"""Worker and beat heartbeats in Redis, and the liveness they give ``/healthz``, the status page and metrics.

Each Celery worker node (its main process, not every pool child) writes ``hostname -> time`` into the
hash :data:`WORKERS_KEY` from Celery's own ``heartbeat_sent`` signal: the consumer's event loop fires
it every 2 s, so a worker whose loop is stuck or that lost its broker stops beating even though its
process lives. Writes are throttled to one per :data:`INTERVAL` seconds; ``worker_ready`` writes at
once and ``worker_shutdown`` removes the entry, so a worker stopped on purpose disappears instead of
turning stale. Beat writes into :data:`BEAT_KEY` from its scheduler's ``tick`` (see
:class:`HeartbeatScheduler`, installed as ``beat_scheduler`` by :mod:`worker.app`, which also caps
beat's sleep between ticks at :data:`INTERVAL`), so only a beat whose loop turns counts as alive.
A beat standing by for the leader lock (:mod:`worker.ops.beatlock`) writes into :data:`STANDBY_KEY` each
time it checks the lock, so operators see that a second beat is alive and ready to take over; it
removes itself when it leads or stops.

Times are Redis's own clock (``TIME`` inside a script for writes, in the same pipeline for reads), so
the age of a heartbeat written on another machine does not depend on the two machines' clocks.
Heartbeat writes use their own client with short timeouts: a slow Redis delays a beat by at most
one second and never raises into Celery.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals
from celery.beat import PersistentScheduler

from worker import redisclient

log = logging.getLogger(__name__)

WORKERS_KEY = "syndicate:heartbeat:workers"
BEAT_KEY = "syndicate:heartbeat:beat"
STANDBY_KEY = "syndicate:heartbeat:beat-standby"
INTERVAL = 5.0
# A heartbeat older than this means the process (or its loop) is gone: several missed beats.
STALE_AFTER = 30.0
# Entries of processes gone this long are dropped from the hashes (a worker renamed or retired).
FORGET_AFTER = 86_400.0


def beat(client: redis.Redis, key: str, name: str, *, prune: bool = False) -> float:
    """Record that ``name`` is alive now (Redis time) in hash ``key``; returns that time."""
    forget = FORGET_AFTER if prune else 0
    return float(client.eval(redisclient.HEARTBEAT, 1, key, name, forget))


def forget(client: redis.Redis, key: str, name: str) -> None:
    """Remove ``name``'s heartbeat (a clean shutdown: the process is gone, not stale)."""
    client.hdel(key, name)


def _ages(entries: dict[Any, Any], now: float) -> list[dict[str, Any]]:
    rows = []
    for name, stamp in entries.items():
        age = max(0.0, now - float(stamp))
        if age <= FORGET_AFTER:
            rows.append({"name": _text(name), "age_seconds": round(age, 3)})
    return sorted(rows, key=lambda row: row["name"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def liveness(client: redis.Redis) -> dict[str, Any]:
    """Every worker's and beat's heartbeat age, read in one round trip.

    ``{"workers": [{"name", "age_seconds"}, ...], "beat": {"name", "age_seconds"} | None,
    "standby": [{"name", "age_seconds"}, ...]}``; ``beat`` is the freshest heartbeat of a beat that
    sends ticks (one leads at a time; a leader that just handed over would show as the older),
    ``standby`` the beats waiting for the leader lock. Raises :class:`redis.RedisError` when Redis
    does not answer.
    """
    pipe = client.pipeline(transaction=False)
    pipe.time()
    pipe.hgetall(WORKERS_KEY)
    pipe.hgetall(BEAT_KEY)
    pipe.hgetall(STANDBY_KEY)
    (seconds, micros), workers, beats, standby = pipe.execute()
    now = seconds + micros / 1e6
    beat_rows = _ages(beats, now)
    return {
        "workers": _ages(workers, now),
        "beat": min(beat_rows, key=lambda row: row["age_seconds"]) if beat_rows else None,
        "standby": _ages(standby, now),
    }


def is_alive(age_seconds: float | None, threshold: float = STALE_AFTER) -> bool:
    """Whether a heartbeat of this age (None: never seen) means the process is alive."""
    return age_seconds is not None and age_seconds <= threshold


@dataclass(frozen=True)
class Verdict:
    """What :func:`liveness` means for health: ``worker``/``beat`` are "ok", "stale" or "missing"."""

    worker: str
    beat: str
    live_workers: int

    @property
    def ok(self) -> bool:
        """At least one live worker and a live beat."""
        return self.worker == "ok" and self.beat == "ok"


def judge(live: dict[str, Any], threshold: float = STALE_AFTER) -> Verdict:
    """Pure: "ok" when some worker (and the beat) beat within ``threshold`` s, else "stale" or "missing"."""
    workers = live.get("workers") or []
    alive = sum(1 for row in workers if is_alive(row["age_seconds"], threshold))
    worker = "ok" if alive else ("stale" if workers else "missing")
    beat_row = live.get("beat")
    beat_state = (
        "missing" if beat_row is None else ("ok" if is_alive(beat_row["age_seconds"], threshold) else "stale")
    )
    return Verdict(worker=worker, beat=beat_state, live_workers=alive)


# ---- writers: Celery signal handlers and the beat scheduler ---------------------------------------------

_last_beat: dict[str, float] = {}


def beat_safely(key: str, name: str, *, force: bool = False, prune: bool = False) -> None:
    """Write a heartbeat unless one was written less than :data:`INTERVAL` s ago; never raises."""
    now = time.monotonic()
    if not force and now - _last_beat.get(key + name, -INTERVAL) < INTERVAL:
        return
    _last_beat[key + name] = now  # a failed write waits its turn too: never block the loop every 2 s
    try:
        beat(redisclient.bookkeeping(), key, name, prune=prune)
    except Exception as exc:  # a heartbeat must never break the worker or beat it reports on
        log.warning("could not write the %s heartbeat to Redis: %s", name, exc)


def _hostname(sender: Any) -> str:
    for owner in (sender, getattr(sender, "eventer", None)):
        name = getattr(owner, "hostname", None)
        if name:
            return str(name)
    return socket.gethostname()


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """``worker_ready``: beat at once, and drop long-gone workers' entries."""
    beat_safely(WORKERS_KEY, _hostname(sender), force=True, prune=True)


def on_heartbeat_sent(sender: Any = None, **_: Any) -> None:
    """``heartbeat_sent`` (every 2 s from the consumer's loop): beat, throttled."""
    beat_safely(WORKERS_KEY, _hostname(sender))


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    """``worker_shutdown``: this worker is going away on purpose, so it leaves the list."""
    try:
        forget(redisclient.bookkeeping(), WORKERS_KEY, _hostname(sender))
    except Exception as exc:
        log.warning("could not remove the worker heartbeat: %s", exc)


def connect_signals() -> None:
    """Connect the worker handlers; must run before the worker boots (Celery checks for receivers then)."""
    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="syndicate-heartbeat-ready")
    signals.heartbeat_sent.connect(on_heartbeat_sent, weak=False, dispatch_uid="syndicate-heartbeat-sent")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="syndicate-heartbeat-down")


def beat_name() -> str:
    """The name beat's heartbeat carries: ``beat@<host>``."""
    return f"beat@{socket.gethostname()}"


def standing_by() -> None:
    """A beat waiting for the leader lock checked it again: it is alive (never raises)."""
    beat_safely(STANDBY_KEY, beat_name(), force=True, prune=True)


def leave_standby() -> None:
    """This beat leads now, or stops: it is no longer standing by (never raises)."""
    try:
        forget(redisclient.bookkeeping(), STANDBY_KEY, beat_name())
    except Exception as exc:
        log.warning("could not remove the standby beat heartbeat: %s", exc)


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default (persistent) beat scheduler that also writes beat's heartbeat on each tick."""

    def setup_schedule(self) -> None:
        """Load the schedule as usual, then beat at once (beat is up)."""
        super().setup_schedule()
        beat_safely(BEAT_KEY, beat_name(), force=True, prune=True)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run due entries as usual, beat (throttled), and never sleep longer than :data:`INTERVAL`."""
        interval = super().tick(*args, **kwargs)
        beat_safely(BEAT_KEY, beat_name())
        return float(min(interval, INTERVAL))

    def close(self) -> None:
        """Stop as usual; a beat stopped on purpose removes its heartbeat."""
        super().close()
        try:
            forget(redisclient.bookkeeping(), BEAT_KEY, beat_name())
        except Exception as exc:
            log.warning("could not remove the beat heartbeat: %s", exc)


# ---- what /healthz says ----------------------------------------------------------------------------------

#: After the web process starts, a worker or beat not seen yet is "starting", not missing: ``syndicate up``
#: and compose start web, worker and beat together and a worker takes seconds to boot.
STARTUP_GRACE = 60.0


def health_checks(live: dict[str, Any], uptime: float, threshold: float = STALE_AFTER) -> dict[str, str]:
    """Pure: ``{"worker": ..., "beat": ...}`` for ``/healthz``; "ok" and "starting" are healthy.

    Anything else ("stale: ...", "missing") makes the deployment degraded: no worker beat within
    ``threshold`` seconds, or beat did not.
    """
    verdict = judge(live, threshold)
    out: dict[str, str] = {}
    workers = live.get("workers") or []
    freshest = min((row["age_seconds"] for row in workers), default=None)
    beat_row = live.get("beat")
    for part, state, age in (
        ("worker", verdict.worker, freshest),
        ("beat", verdict.beat, beat_row["age_seconds"] if beat_row else None),
    ):
        if state == "missing" and uptime < STARTUP_GRACE:
            out[part] = "starting"
        elif state == "stale":
            out[part] = f"stale: last heartbeat {age:.0f}s ago"
        else:
            out[part] = state
    return out
