"""Gates before a send that never sleep: quiet hours and whether an endpoint is paced (the pacing and
rate-limit blocks shared by every worker through Redis are :class:`worker.sendslots.Pacer`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from config.model import EndpointBase

log = logging.getLogger(__name__)


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
