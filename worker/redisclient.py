"""The one way the worker and web processes open a Redis client: bounded retries on a down server.

redis-py 6 and later retry a failed connection ten times with jittered backoff by default, which
makes each command against a stopped Redis take about 4 s (more on a loaded machine). Our callers
all have a fallback for Redis being away (a per-process host limiter, "stored, queue unavailable",
a degraded ``/healthz``), and those are only useful when the failure is quick, so a client here
retries twice within about 0.3 s: enough for a restart's refused connection, not a stall.

This module also holds every Lua script the worker runs on Redis (one place to read what each
script does to which keys; each constant names the module that runs it), and the one shared
bookkeeping client (:func:`bookkeeping`) that signal handlers, heartbeats and metrics write with.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from config import get_settings

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


_bookkeeping: redis.Redis | None = None


def bookkeeping() -> redis.Redis:
    """The process's client for bookkeeping writes (markers, heartbeats, metrics): 1 s timeouts.

    Built on first use from the environment's Redis URL; a slow Redis then costs a signal handler
    or a metrics flush a second at most, and never the work it records.
    """
    global _bookkeeping
    if _bookkeeping is None:
        url = get_settings().effective_redis_url
        _bookkeeping = connect(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return _bookkeeping


# ---------------------------------------------------------------- Lua scripts

# ---- worker.ops.beatlock (the beat leader lock) and worker.ops.sweep (the sweep lock)

# Renew our own claim, or take the lock when nobody holds it (expired, released, flushed).
LEADER_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""

# Delete KEYS[1] only if it still holds our token ARGV[1] (the beat leader lock, the sweep lock).
RELEASE_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# ---- worker.ops.configwatch

# HSET KEYS[1] field ARGV[1] to the JSON entry ARGV[2] stamped with Redis time; return GET KEYS[2]
# (the reload counter).
CONFIG_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local entry = cjson.decode(ARGV[2])
entry['at'] = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return redis.call('GET', KEYS[2])
"""

# ---- worker.fetch.hostlimit

# One hash per host (ms on Redis's clock): last (grant, then release), horizon (last reserved
# slot), interval (the one last in force), held (until when a turn is out) and holder.
# ARGV: interval ms, known (1/0), hold ms, holder, keep ms, horizon steps, who, promise grace ms.
# Returns 0 (granted) or the ms to wait. ``next``/``next_at``: the caller promised the next turn, its slot.
# Redis TIME makes the script non-deterministic, which Redis >= 5 replicates by effects, so it is
# safe to write after reading it.
HOST_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local hold = tonumber(ARGV[3])
local keep = tonumber(ARGV[5])
local s = redis.call(
  'HMGET', KEYS[1], 'last', 'horizon', 'interval', 'held', 'backoff', 'backoff_until', 'next', 'next_at')
local last, horizon, stored, held = tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'interval', interval)
elseif stored and stored > interval then
  interval = stored
end
local backoff_until = tonumber(s[6]) or 0
if backoff_until > now and (tonumber(s[5]) or 0) > interval then
  interval = tonumber(s[5])
end
keep = math.max(keep, backoff_until - now)
local busy = held and held > now
local step = interval + math.min(250, 50 + math.floor(interval * 0.05))
local who, nxt, nxt_at = ARGV[7], s[7], tonumber(s[8])
local promised = nxt and nxt ~= '' and nxt_at and now <= nxt_at + math.max(tonumber(ARGV[8]), step)
if (not busy) and ((not last) or now - last >= interval) and not (promised and nxt ~= who) then
  if hold > 0 then
    redis.call('HSET', KEYS[1], 'last', now, 'held', now + hold, 'holder', ARGV[4])
  else
    redis.call('HSET', KEYS[1], 'last', now)
    redis.call('HDEL', KEYS[1], 'held', 'holder')
  end
  if promised then
    redis.call('HDEL', KEYS[1], 'next', 'next_at')
  end
  redis.call('PEXPIRE', KEYS[1], hold + interval + keep)
  return 0
end
local slot = (last or now) + step
if busy and now + step > slot then
  slot = now + step
end
if busy and last and now + math.min(now - last, held - now + step) > slot then
  slot = now + math.min(now - last, held - now + step)
end
if horizon and horizon + step > slot then
  slot = math.min(horizon + step, slot + tonumber(ARGV[6]) * step)
end
if promised and nxt ~= who then
  if nxt_at + step > slot then
    slot = nxt_at + step
  end
elseif who ~= '' then
  redis.call('HSET', KEYS[1], 'next', who, 'next_at', slot)
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
HOST_RELEASE = """
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

# ARGV: interval ms, base ms, max ms, keep ms. Returns the host's new widened interval in ms.
HOST_BACK_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'backoff', 'backoff_until')
local current = tonumber(s[1]) or 0
if (tonumber(s[2]) or 0) <= now then
  current = 0
end
local keep = tonumber(ARGV[4])
local widened = math.min(math.max(current * 2, tonumber(ARGV[1]) * 2, tonumber(ARGV[2])), tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'backoff', widened, 'backoff_until', now + keep)
if redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], keep)
end
return widened
"""

# ---- worker.ops.heartbeat

# HSET field -> Redis server time; then drop fields older than ARGV[2] seconds (0: keep all).
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', now))
local forget = tonumber(ARGV[2])
if forget > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if now - tonumber(all[i + 1]) > forget then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
return string.format('%.6f', now)
"""

# ---- worker.outbox (endpoint pacing)

# KEYS: an endpoint's sent-times zset and its block key. ARGV: now, min interval, per hour, token.
# Returns '0' (a send slot taken) or the seconds to wait, as a string.
PACE_RESERVE = """
local sent_key, block_key = KEYS[1], KEYS[2]
local now, min_interval, per_hour = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', block_key) or '0')
if blocked > now then return tostring(blocked - now) end
redis.call('ZREMRANGEBYSCORE', sent_key, '-inf', now - 3600)
if min_interval > 0 then
  local last = redis.call('ZREVRANGE', sent_key, 0, 0, 'WITHSCORES')
  if last[2] and now - tonumber(last[2]) < min_interval then
    return tostring(min_interval - (now - tonumber(last[2])))
  end
end
if per_hour > 0 and redis.call('ZCARD', sent_key) >= per_hour then
  local first = redis.call('ZRANGE', sent_key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(first[2]) + 3600 - now)
end
if min_interval > 0 or per_hour > 0 then
  redis.call('ZADD', sent_key, now, ARGV[4])
  redis.call('EXPIRE', sent_key, 3700)
end
return '0'
"""

# ---- worker.sendslots

# KEYS[1] the node's in-flight set. ARGV: now, slow_after, budget, endpoint, member, seconds prefix,
# stale before. Returns '0' (started) or the endpoint's last send time (refused; '' if none).
SEND_SLOT_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[7])
local now, slow_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local function known_slow(name)
  local s = tonumber(redis.call('GET', ARGV[6] .. name) or '0') or 0
  return s > slow_after
end
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local held, mine = 0, known_slow(ARGV[4])
for i = 1, #entries, 2 do
  local name = string.match(entries[i], '^(.*)|[^|]*|[^|]*$') or ''
  local long = now - tonumber(entries[i + 1]) > slow_after
  if long or known_slow(name) then
    held = held + 1
    if name == ARGV[4] then mine = true end
  end
end
if mine and held >= tonumber(ARGV[3]) then
  return redis.call('GET', ARGV[6] .. ARGV[4]) or ''
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('EXPIRE', KEYS[1], 3600)
return '0'
"""

# ---- worker.ops.sweep (work markers)

# The publisher writes "queued" after its publish returned; a worker may have taken the message and
# marked it held by then (a run that takes longer than the race then looked queued-but-taken to the
# sweep), or even finished it. A held marker of the same task id is left as it is.
MARK_PUBLISHED = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 2) == 'w|' and string.sub(cur, -string.len(ARGV[3]) - 1) == '|' .. ARGV[3] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

# KEYS: a work marker and its failure counter. ARGV: this run's held marker, failed (1/0), base and
# max cool-down seconds, the cool-down marker. Returns 1 if the marker was this run's (and changed).
MARK_FINISHED = """
local key, failures = KEYS[1], KEYS[2]
if redis.call('GET', key) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  local n = redis.call('INCR', failures)
  redis.call('EXPIRE', failures, 86400)
  local wait = math.min(tonumber(ARGV[3]) * 2 ^ (n - 1), tonumber(ARGV[4]))
  redis.call('SET', key, ARGV[5], 'EX', math.max(1, math.floor(wait)))
else
  redis.call('DEL', key, failures)
end
return 1
"""
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
