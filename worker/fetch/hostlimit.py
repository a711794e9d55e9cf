"""Per-host politeness: at most one request per host per interval, across every worker process and machine.

One limiter interface, :class:`HostLimiter`, with a Redis backend (:class:`RedisHostLimiter`, a Lua
script run atomically on the Redis every worker shares, on Redis's own clock so machines' clocks
need not agree) and an in-process one (:class:`LocalHostLimiter`, for the CLI and tests without
Redis). :meth:`HostLimiter.acquire` either grants the host now (the caller sends its request) or
answers how many seconds to wait; it never sleeps. The fetcher turns a wait into
:class:`~worker.errors.HostBusy` and the Celery task reschedules itself for that moment.

The interval of a host is ``max(fetch.host_interval, robots.txt Crawl-delay)``. A caller that is
told to wait also *reserves* a later slot: each refused caller is given the slot after the last
one handed out, spaced by the interval plus a small margin, so that tasks piling up on one host
come back one by one instead of all at once (which would waste every slot but one). Reservations
are only estimates: the grant itself is always "no request to this host in the last interval".
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = ["HostLimiter", "LocalHostLimiter", "RedisHostLimiter", "reservation_margin"]

KEY_PREFIX = "syndicate:host-limit:"


def reservation_margin(interval: float) -> float:
    """Extra spacing between reserved slots, so a task scheduled a little late still finds its slot free."""
    return min(0.25, 0.05 + interval * 0.05)


class HostLimiter(Protocol):
    """Grants requests to a host no closer together than an interval."""

    def acquire(self, host: str, interval: float) -> float:
        """0.0 if a request to ``host`` (``name:port``) may be sent now, else the seconds to wait."""
        ...


class LocalHostLimiter:
    """The limiter for one process (no Redis): the same rule, kept in a dict under a lock."""

    def __init__(self) -> None:
        """Start with no host seen."""
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._horizon: dict[str, float] = {}

    def acquire(self, host: str, interval: float) -> float:
        """See :meth:`HostLimiter.acquire`."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(host)
            # A grant under interval 0 is recorded too: a later caller knowing a Crawl-delay counts from it.
            if last is None or now - last >= interval:
                self._last[host] = now
                return 0.0
            step = interval + reservation_margin(interval)
            slot = max(last + step, self._horizon.get(host, 0.0) + step)
            self._horizon[host] = slot
            return slot - now


# KEYS[1]: the last grant (ms, Redis clock); KEYS[2]: the last reserved slot. ARGV: interval and
# margin in ms. Returns 0 (granted) or the ms to wait. Redis TIME makes the script non-deterministic,
# which Redis >= 5 replicates by effects, so it is safe to write after reading it.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local margin = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]))
if (not last) or now - last >= interval then
  redis.call('SET', KEYS[1], now, 'PX', interval + 60000)
  return 0
end
local step = interval + margin
local horizon = tonumber(redis.call('GET', KEYS[2]))
local slot = last + step
if horizon and horizon + step > slot then
  slot = horizon + step
end
redis.call('SET', KEYS[2], slot, 'PX', slot - now + interval + 60000)
redis.call('PEXPIRE', KEYS[1], slot - now + interval + 60000)
return slot - now
"""


class RedisHostLimiter:
    """The limiter every worker shares: one Lua script per acquire, atomic on the Redis server.

    If Redis cannot be reached the process falls back to its own :class:`LocalHostLimiter` (logged
    once) rather than failing every fetch: politeness then holds per process until Redis is back.
    """

    def __init__(self, client: Any) -> None:
        """Use the ``redis.Redis`` ``client``."""
        self.client = client
        self._script = client.register_script(_SCRIPT)
        self._fallback = LocalHostLimiter()
        self._warned = False

    def acquire(self, host: str, interval: float) -> float:
        """See :meth:`HostLimiter.acquire`."""
        import redis

        interval_ms = max(0, round(interval * 1000))
        margin_ms = round(reservation_margin(interval) * 1000)
        keys = [f"{KEY_PREFIX}{host}", f"{KEY_PREFIX}{host}:reserved"]
        try:
            wait_ms = self._script(keys=keys, args=[interval_ms, margin_ms])
        except redis.RedisError as exc:
            if not self._warned:
                log.warning("host limiter: Redis unavailable (%s); limiting per process", exc)
                self._warned = True
            return self._fallback.acquire(host, interval)
        self._warned = False
        return max(0.0, int(wait_ms) / 1000.0)
