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
