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

Reservations alone are first come, first served at the moment of the grant, so a task retrying a failed
fetch (which reserved nothing) could take the turn a waiting task was told to come back for, again and
again. So the first caller refused while no turn is promised (``who``, its URL, names it across its
reschedules) is *promised* the next turn: the host is granted to nobody else until that caller took it
or :data:`PROMISE_GRACE` seconds after its slot passed (a task that died gives the turn back soon).

A caller refused while the host is held is told to come back no sooner than the host has been held
so far (up to the hold's end): a turn held for seconds is likely a slow exchange that will run to
its deadline, so waiters ask again after 1, 2, 4, 8... seconds instead of every interval (a URL that
answers after 46 s made every other task of its host reschedule ~20 times per turn). And a host whose
exchanges fail (timeouts, refused or reset connections: :meth:`HostLimiter.back_off`) gets a wider
interval for a while: :data:`BACKOFF_BASE` seconds (or twice its interval) after the first failure,
doubling with each further one up to :data:`BACKOFF_MAX`, forgotten :data:`BACKOFF_KEEP` seconds after
the last.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from redis import RedisError

from worker import redisclient

log = logging.getLogger(__name__)

__all__ = ["HostLimiter", "LocalHostLimiter", "RedisHostLimiter", "backoff_step", "reservation_margin"]

# A hash per host; the old string keys (``syndicate:host-limit:``) of earlier versions are left to expire.
KEY_PREFIX = "syndicate:host-turn:"
# How long an idle host's state outlives its last use (it matters for one interval only).
_KEEP_MS = 60_000
# A failing host's interval: at least this after a failure, doubled by each further one up to the max,
# and dropped this long after the last failure.
BACKOFF_BASE = 2.0
BACKOFF_MAX = 4.0
# A refused caller's reserved slot is at most this many steps after the host's next turn: callers that
# come back refused again would otherwise push the horizon ever further, while tasks retrying a failed
# fetch (which reserve nothing) took every turn in between.
HORIZON_STEPS = 2
# A promised turn (see HostLimiter.acquire's ``who``) is kept this long past its slot at least.
PROMISE_GRACE = 2.0
BACKOFF_KEEP = 120.0


def reservation_margin(interval: float) -> float:
    """Extra spacing between reserved slots, so a task scheduled a little late still finds its slot free."""
    return min(0.25, 0.05 + interval * 0.05)


def promise_grace(step: float) -> float:
    """How long after its slot a promised turn waits for its caller (a task may come back a bit late)."""
    return max(PROMISE_GRACE, step)


def backoff_step(current: float, interval: float) -> float:
    """A failing host's widened interval after one more failure (``current``: the one in force, or 0)."""
    return min(max(current * 2, interval * 2, BACKOFF_BASE), BACKOFF_MAX)


class HostLimiter(Protocol):
    """Grants turns at a host, one at a time, no closer together than an interval."""

    def acquire(
        self,
        host: str,
        interval: float,
        *,
        hold: float = 0.0,
        known: bool = True,
        holder: str = "",
        who: str = "",
    ) -> float:
        """0.0 if a request to ``host`` (``name:port``) may be sent now, else the seconds to wait.

        A grant with ``hold > 0`` keeps the host for ``holder`` until :meth:`release` (or ``hold``
        seconds). ``known=False``: ``interval`` is a default, the host's interval in force may be longer.
        ``who`` names the caller across its reschedules (the URL): the first caller refused while no
        turn is promised is promised the next one, which nobody else gets while the promise stands.
        """
        ...

    def release(self, host: str, holder: str = "") -> None:
        """``holder``'s exchange with ``host`` is over: the interval counts from now."""
        ...

    def back_off(self, host: str, interval: float) -> float:
        """An exchange with ``host`` failed (timeout, connection): widen its interval; return the new one."""
        ...


class _HostState:
    """What :class:`LocalHostLimiter` keeps per host (times on the monotonic clock)."""

    __slots__ = (
        "backoff",
        "backoff_until",
        "held_until",
        "holder",
        "horizon",
        "interval",
        "last",
        "next",
        "next_at",
    )

    def __init__(self) -> None:
        self.last: float | None = None
        self.horizon: float | None = None
        self.interval: float | None = None
        self.held_until = 0.0
        self.holder = ""
        self.backoff = 0.0
        self.backoff_until = 0.0
        self.next = ""
        self.next_at = 0.0


class LocalHostLimiter:
    """The limiter for one process (no Redis): the same rules, kept in a dict under a lock."""

    def __init__(self) -> None:
        """Start with no host seen."""
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    def acquire(
        self,
        host: str,
        interval: float,
        *,
        hold: float = 0.0,
        known: bool = True,
        holder: str = "",
        who: str = "",
    ) -> float:
        """See :meth:`HostLimiter.acquire`."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            if known:
                state.interval = interval
            elif state.interval is not None:
                interval = max(interval, state.interval)
            if state.backoff_until > now:
                interval = max(interval, state.backoff)
            held = state.held_until > now
            step = interval + reservation_margin(interval)
            promised = bool(state.next) and now <= state.next_at + promise_grace(step)
            # A grant under interval 0 is recorded too: a later caller knowing a Crawl-delay counts from it.
            free = not held and (state.last is None or now - state.last >= interval)
            if free and not (promised and state.next != who):
                state.last = now
                state.held_until, state.holder = (now + hold, holder) if hold > 0 else (0.0, "")
                if promised:
                    state.next, state.next_at = "", 0.0
                return 0.0
            slot = (now if state.last is None else state.last) + step
            if held:
                slot = max(slot, now + step)  # its release is still to come, so the next turn is later
                # Held this long already: likely a slow exchange; ask again no sooner than that again.
                held_for = now - (state.last if state.last is not None else now)
                slot = max(slot, now + min(held_for, state.held_until - now + step))
            if state.horizon is not None:
                slot = min(max(slot, state.horizon + step), slot + HORIZON_STEPS * step)
            if promised and state.next != who:
                slot = max(slot, state.next_at + step)  # after the promised turn
            elif who:
                state.next, state.next_at = who, slot  # promised to this caller (kept while it waits)
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

    def back_off(self, host: str, interval: float) -> float:
        """See :meth:`HostLimiter.back_off`."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            current = state.backoff if state.backoff_until > now else 0.0
            state.backoff, state.backoff_until = backoff_step(current, interval), now + BACKOFF_KEEP
            return state.backoff


class RedisHostLimiter:
    """The limiter every worker shares: one Lua script per acquire or release, atomic on the Redis server.

    If Redis cannot be reached the process falls back to its own :class:`LocalHostLimiter` (logged
    once) rather than failing every fetch: politeness then holds per process until Redis is back.
    """

    def __init__(self, client: Any) -> None:
        """Use the ``redis.Redis`` ``client``."""
        self.client = client
        self._acquire = client.register_script(redisclient.HOST_ACQUIRE)
        self._release = client.register_script(redisclient.HOST_RELEASE)
        self._back_off = client.register_script(redisclient.HOST_BACK_OFF)
        self._fallback = LocalHostLimiter()
        self._fallback_turns: set[tuple[str, str]] = set()
        self._warned = False

    def acquire(
        self,
        host: str,
        interval: float,
        *,
        hold: float = 0.0,
        known: bool = True,
        holder: str = "",
        who: str = "",
    ) -> float:
        """See :meth:`HostLimiter.acquire`."""
        args = [
            max(0, round(interval * 1000)),
            1 if known else 0,
            max(0, round(hold * 1000)),
            holder,
            _KEEP_MS,
            HORIZON_STEPS,
            who,
            round(PROMISE_GRACE * 1000),
        ]
        try:
            wait_ms = self._acquire(keys=[KEY_PREFIX + host], args=args)
        except RedisError as exc:
            self._redis_down(exc)
            wait = self._fallback.acquire(host, interval, hold=hold, known=known, holder=holder, who=who)
            if wait <= 0:
                self._fallback_turns.add((host, holder))
            return wait
        self._warned = False
        return max(0.0, int(wait_ms) / 1000.0)

    def release(self, host: str, holder: str = "") -> None:
        """See :meth:`HostLimiter.release`."""
        if (host, holder) in self._fallback_turns:
            self._fallback_turns.discard((host, holder))
            self._fallback.release(host, holder)
        try:
            self._release(keys=[KEY_PREFIX + host], args=[holder, _KEEP_MS])
        except RedisError as exc:
            self._redis_down(exc)
            self._fallback.release(host, holder)

    def back_off(self, host: str, interval: float) -> float:
        """See :meth:`HostLimiter.back_off`."""
        args = [max(0, round(interval * 1000)), round(BACKOFF_BASE * 1000), round(BACKOFF_MAX * 1000)]
        try:
            widened = self._back_off(keys=[KEY_PREFIX + host], args=[*args, round(BACKOFF_KEEP * 1000)])
        except RedisError as exc:
            self._redis_down(exc)
            return self._fallback.back_off(host, interval)
        return int(widened) / 1000.0

    def _redis_down(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("host limiter: Redis unavailable (%s); limiting per process", exc)
            self._warned = True
