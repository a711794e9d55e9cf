"""The one way the worker and web processes open a Redis client: bounded retries on a down server.

redis-py 6 and later retry a failed connection ten times with jittered backoff by default, which
makes each command against a stopped Redis take about 4 s (more on a loaded machine). Our callers
all have a fallback for Redis being away (a per-process host limiter, "stored, queue unavailable",
a degraded ``/healthz``), and those are only useful when the failure is quick, so a client here
retries twice within about 0.3 s: enough for a restart's refused connection, not a stall.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

RETRIES = 2
"""Retries of a command after a connection error or timeout, on top of the first try."""


def bounded_retry() -> Retry:
    """A fresh retry policy: :data:`RETRIES` tries after the first, 100 and then 200 ms later."""
    return Retry(ExponentialBackoff(cap=0.25, base=0.05), RETRIES)


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` with :func:`bounded_retry`; ``options`` go to ``redis.Redis.from_url``.

    A connect timeout of 2 s is the default so that an unroutable host fails like a refused port.
    """
    options.setdefault("socket_connect_timeout", 2.0)
    options.setdefault("retry", bounded_retry())
    return redis.Redis.from_url(url, **options)


# ---------------------------------------------------------------- Lua: feed render debounce
# Used by :mod:`worker.render` (see ``debounce`` and ``begin_render`` there).

# The window is RENDER_WINDOW_SECONDS, or RENDER_COST_FACTOR x the feed's last render time (kept in
# Redis) up to RENDER_WINDOW_MAX; read and both SET NX in one round trip, since this runs for every
# changed article and feed. The trailing key holds the task id of the render it scheduled (ARGV[5]).
# Returns {0 nothing | 1 render now | 2 render at the window's end, ms}.
SCHEDULE_RENDER = """
local cost = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local span = math.min(math.max(tonumber(ARGV[1]), cost * tonumber(ARGV[2])), tonumber(ARGV[3]))
local ms = math.floor(span * 1000)
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ms) then return {1, ms} end
if redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ms + math.floor(tonumber(ARGV[4]) * 1000)) then
  return {2, ms}
end
return {0, ms}
"""


# A render starting (task id ARGV[4]). If it is the scheduled trailing render, its key is cleared:
# a change from now on needs a render after this one. Any other render (a leading edge, the sweep's)
# leaves a pending trailing render's key alone: that render reads later and covers every change until
# it starts, so clearing the key only let each change in between schedule one more (bench/scaleout.py
# counted 0.5 renders per article at 20 articles/s, 40 % of the workers' task time). And unless a
# window is open (a leading-edge render), one opens now, so that the next change after a trailing
# render waits for that window's end rather than rendering again at once.
BEGIN_RENDER = """
local cost = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local span = math.min(math.max(tonumber(ARGV[1]), cost * tonumber(ARGV[2])), tonumber(ARGV[3]))
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', math.floor(span * 1000)) then return 1 end
return 0
"""
