"""Gates before a send that never sleep: per-endpoint pacing and network rate-limit blocks (shared by
every worker through Redis) and quiet hours.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from config.model import EndpointBase
from worker.outbox.outcome import Deferred

log = logging.getLogger(__name__)


_RESERVE = """
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


class Pacer:
    """Per-endpoint pacing and network rate-limit blocks, shared by all processes through Redis."""

    def __init__(self, redis_client: Any) -> None:
        """Keep pacing state in ``redis_client`` (``None``: no pacing, e.g. an inline CLI run)."""
        self.redis = redis_client
        self._script = redis_client.register_script(_RESERVE) if redis_client is not None else None

    def reserve(self, endpoint: EndpointBase, token: str) -> float:
        """Take a send slot for ``endpoint`` now (return 0) or say how many seconds until one opens."""
        if self._script is None:
            return 0.0

        try:
            wait = self._script(
                keys=[f"syndicate:pace:{endpoint.name}", f"syndicate:block:{endpoint.name}"],
                args=[time.time(), endpoint.min_interval or 0, endpoint.max_per_hour or 0, token],
            )
        except redis.RedisError as exc:
            if not (endpoint.min_interval or endpoint.max_per_hour):
                return 0.0  # nothing to pace; a network's block is lost with Redis, its 429 comes back
            raise Deferred(30.0, f"pacing needs Redis, which is unreachable: {exc}") from None
        return float(wait)

    def block(self, endpoint: str, seconds: float) -> None:
        """Hold every post to ``endpoint`` for ``seconds`` (the network said so)."""
        if self.redis is not None and seconds > 0:
            until = time.time() + seconds
            try:
                self.redis.set(f"syndicate:block:{endpoint}", str(until), ex=int(seconds) + 1)
            except redis.RedisError as exc:
                log.warning("%s: cannot record the network's rate-limit block: %s", endpoint, exc)


def quiet_wait(endpoint: EndpointBase, now: datetime) -> float:
    """Seconds until ``endpoint``'s quiet hours end, or 0 outside them."""
    quiet = endpoint.quiet_hours
    if quiet is None:
        return 0.0
    local = now.astimezone(ZoneInfo(quiet.timezone))
    start, end = quiet.minutes()
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside or start == end:
        return 0.0
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    # Subtract in UTC: on a night the clocks change, wall-clock minutes are not real minutes.
    return (ends.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


def paced(endpoint: EndpointBase) -> bool:
    return bool(endpoint.min_interval or endpoint.max_per_hour)
