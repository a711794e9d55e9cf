"""Per-host politeness: one request at a time per host, spaced by an interval, across every worker.

One limiter interface, :class:`HostLimiter`, with a Redis backend (:class:`RedisHostLimiter`, Lua
scripts run atomically on the Redis every worker shares, on Redis's own clock so machines' clocks
need not agree) and an in-process one (:class:`LocalHostLimiter`, for the CLI and tests without
Redis). :meth:`HostLimiter.acquire` either grants the host now (the caller sends its request) or
answers how many seconds to wait; it never sleeps. The fetcher turns a wait into
:class:`~worker.errors.HostBusy` and the Celery task reschedules itself for that moment.

A grant is a *turn*, not a timestamp. The granted caller holds the host (for at most ``hold``
seconds, the bound of its whole exchange) and gives it back with :meth:`HostLimiter.release` when
its exchange is over; the interval is counted from that release. So the server sees the next
request at least one interval after the previous one *reached* it, however long the previous one
took to get there. Counting from the grant instead (as this module once did) assumed a request
reaches the host right after its grant; the first fetch of a worker process spent 0.2-0.3 s
between grant and socket (lazy imports), a TLS handshake or a busy CPU does the same, and two
processes under a 0.4 s ``Crawl-delay`` reached the host 0.24-0.33 s apart.

The interval of a host is ``max(fetch.host_interval, robots.txt Crawl-delay)``. A caller that does
not know it yet (the robots.txt request itself: the file is what says it) passes ``known=False``
and the limiter uses the interval last in force for that host, if greater; a caller that knows it
records it for those. A caller that is told to wait also *reserves* a later slot: each refused
caller is given the slot after the last one handed out, spaced by the interval plus a small
margin, so that tasks piling up on one host come back one by one instead of all at once (which
would waste every slot but one). Reservations are only estimates and never let anyone in: the
grant itself is always "the host is not held and was last released at least one interval ago".

A worker killed during its exchange leaves the host held until ``hold`` runs out (the fetch
deadline, 46 s under the default 15 s timeout): politeness errs on the side of the host.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = ["HostLimiter", "LocalHostLimiter", "RedisHostLimiter", "reservation_margin"]

# A hash per host; the old string keys (``syndicate:host-limit:``) of earlier versions are left to expire.
KEY_PREFIX = "syndicate:host-turn:"
# How long an idle host's state outlives its last use (it matters for one interval only).
_KEEP_MS = 60_000


def reservation_margin(interval: float) -> float:
    """Extra spacing between reserved slots, so a task scheduled a little late still finds its slot free."""
    return min(0.25, 0.05 + interval * 0.05)


class HostLimiter(Protocol):
    """Grants turns at a host, one at a time, no closer together than an interval."""

    def acquire(
        self, host: str, interval: float, *, hold: float = 0.0, known: bool = True, holder: str = ""
    ) -> float:
        """0.0 if a request to ``host`` (``name:port``) may be sent now, else the seconds to wait.

        A grant with ``hold > 0`` keeps the host for ``holder`` until :meth:`release` (or ``hold``
        seconds). ``known=False``: ``interval`` is a default, the host's interval in force may be longer.
        """
        ...

    def release(self, host: str, holder: str = "") -> None:
        """``holder``'s exchange with ``host`` is over: the interval counts from now."""
        ...


class _HostState:
    """What :class:`LocalHostLimiter` keeps per host (times on the monotonic clock)."""

    __slots__ = ("held_until", "holder", "horizon", "interval", "last")

    def __init__(self) -> None:
        self.last: float | None = None
        self.horizon: float | None = None
        self.interval: float | None = None
        self.held_until = 0.0
        self.holder = ""


class LocalHostLimiter:
    """The limiter for one process (no Redis): the same rules, kept in a dict under a lock."""

    def __init__(self) -> None:
        """Start with no host seen."""
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    def acquire(
        self, host: str, interval: float, *, hold: float = 0.0, known: bool = True, holder: str = ""
    ) -> float:
        """See :meth:`HostLimiter.acquire`."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            if known:
                state.interval = interval
            elif state.interval is not None:
                interval = max(interval, state.interval)
            held = state.held_until > now
            # A grant under interval 0 is recorded too: a later caller knowing a Crawl-delay counts from it.
            if not held and (state.last is None or now - state.last >= interval):
                state.last = now
                state.held_until, state.holder = (now + hold, holder) if hold > 0 else (0.0, "")
                return 0.0
            step = interval + reservation_margin(interval)
            slot = (now if state.last is None else state.last) + step
            if held:
                slot = max(slot, now + step)  # its release is still to come, so the next turn is later
            if state.horizon is not None:
                slot = max(slot, state.horizon + step)
            state.horizon = slot
            return slot - now

    def release(self, host: str, holder: str = "") -> None:
        """See :meth:`HostLimiter.release`."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            state.last = now if state.last is None else max(state.last, now)
            if state.holder == holder:
                state.held_until, state.holder = 0.0, ""


# One hash per host (ms on Redis's clock): last (grant, then release), horizon (last reserved
# slot), interval (the one last in force), held (until when a turn is out) and holder.
# ARGV: interval ms, known (1/0), hold ms, holder, keep ms. Returns 0 (granted) or the ms to wait.
# Redis TIME makes the script non-deterministic, which Redis >= 5 replicates by effects, so it is
# safe to write after reading it.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local hold = tonumber(ARGV[3])
local keep = tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'last', 'horizon', 'interval', 'held')
local last, horizon, stored, held = tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'interval', interval)
elseif stored and stored > interval then
  interval = stored
end
local busy = held and held > now
if (not busy) and ((not last) or now - last >= interval) then
  if hold > 0 then
    redis.call('HSET', KEYS[1], 'last', now, 'held', now + hold, 'holder', ARGV[4])
  else
    redis.call('HSET', KEYS[1], 'last', now)
    redis.call('HDEL', KEYS[1], 'held', 'holder')
  end
  redis.call('PEXPIRE', KEYS[1], hold + interval + keep)
  return 0
end
local step = interval + math.min(250, 50 + math.floor(interval * 0.05))
local slot = (last or now) + step
if busy and now + step > slot then
  slot = now + step
end
if horizon and horizon + step > slot then
  slot = horizon + step
end
redis.call('HSET', KEYS[1], 'horizon', slot)
local until_ms = slot
if busy and held > slot then
  until_ms = held
end
redis.call('PEXPIRE', KEYS[1], until_ms - now + interval + keep)
return slot - now
"""

# ARGV: holder, keep ms. The release moment is the new "last"; the turn is freed if it is still ours.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'last', 'holder', 'interval')
local last, holder, interval = tonumber(s[1]), s[2], tonumber(s[3]) or 0
if (not last) or now > last then
  redis.call('HSET', KEYS[1], 'last', now)
end
if holder == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'held', 'holder')
end
if redis.call('PTTL', KEYS[1]) < interval + tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], interval + tonumber(ARGV[2]))
end
return 1
"""


class RedisHostLimiter:
    """The limiter every worker shares: one Lua script per acquire or release, atomic on the Redis server.

    If Redis cannot be reached the process falls back to its own :class:`LocalHostLimiter` (logged
    once) rather than failing every fetch: politeness then holds per process until Redis is back.
    """

    def __init__(self, client: Any) -> None:
        """Use the ``redis.Redis`` ``client``."""
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._fallback = LocalHostLimiter()
        self._fallback_turns: set[tuple[str, str]] = set()
        self._warned = False

    def acquire(
        self, host: str, interval: float, *, hold: float = 0.0, known: bool = True, holder: str = ""
    ) -> float:
        """See :meth:`HostLimiter.acquire`."""
        import redis

        args = [
            max(0, round(interval * 1000)),
            1 if known else 0,
            max(0, round(hold * 1000)),
            holder,
            _KEEP_MS,
        ]
        try:
            wait_ms = self._acquire(keys=[KEY_PREFIX + host], args=args)
        except redis.RedisError as exc:
            self._redis_down(exc)
            wait = self._fallback.acquire(host, interval, hold=hold, known=known, holder=holder)
            if wait <= 0:
                self._fallback_turns.add((host, holder))
            return wait
        self._warned = False
        return max(0.0, int(wait_ms) / 1000.0)

    def release(self, host: str, holder: str = "") -> None:
        """See :meth:`HostLimiter.release`."""
        import redis

        if (host, holder) in self._fallback_turns:
            self._fallback_turns.discard((host, holder))
            self._fallback.release(host, holder)
        try:
            self._release(keys=[KEY_PREFIX + host], args=[holder, _KEEP_MS])
        except redis.RedisError as exc:
            self._redis_down(exc)
            self._fallback.release(host, holder)

    def _redis_down(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("host limiter: Redis unavailable (%s); limiting per process", exc)
            self._warned = True
