"""robots.txt (RFC 9309) for the fetcher: parsed with protego, cached per origin with expiry.

:class:`Robots` answers, for any URL, whether our user agent's group allows it, the group's
``Crawl-delay`` (or ``Request-rate``) and the file's ``Sitemap:`` lines. The file is fetched through
the :class:`~worker.fetch.http.Fetcher` itself, so the SSRF guard, the deadline, the size cap and
the per-host rate limit apply to it as to any page. What the fetch brings decides the rules
(RFC 9309 section 2.3.1):

- a 2xx answer: its rules (after up to five redirects, each hop guarded);
- "unavailable" (any 4xx but 429, a redirect loop, a body we cannot use): everything is allowed;
- refused by the SSRF guard (the file, a redirect hop or its connection's address): the fetch
  raises :class:`~worker.errors.BlockedURL`, nothing is cached, and the page is refused too;
- "unreachable" (5xx, 429, timeouts, connection errors): everything is disallowed, for the shorter
  ``fetch.robots_error_ttl``, after which the file is asked for again.

The result is cached per origin (``scheme://host:port``) for ``fetch.robots_ttl`` (24 hours by
default, the RFC's upper bound), in Redis when the worker has one, so that every worker process
and machine shares one copy and the file is fetched once per origin and period, and in process
memory as well (always, and alone when there is no Redis). Every entry carries its own expiry
moment, so the two layers agree on when it ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from protego import Protego
from redis import RedisError

from worker.errors import HostBusy

log = logging.getLogger(__name__)

__all__ = ["ROBOTS_PATH", "Robots", "RobotsAnswer", "RobotsRules", "origin_of", "robots_url"]

ROBOTS_PATH = "/robots.txt"
KEY_PREFIX = "syndicate:robots:"
# Held (10 s at most) by the one worker fetching an origin's robots.txt.
FETCHING_PREFIX = "syndicate:robots-fetching:"
# Bounds the in-process cache; a worker rarely talks to this many origins within a TTL.
_LOCAL_MAX = 4096

State = Literal["rules", "allow", "disallow"]


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``, the scope one robots.txt governs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def robots_url(url: str) -> str:
    """The robots.txt URL for ``url``'s origin."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1], ROBOTS_PATH, "", ""))


def product_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against (``Syndicate`` in ``Syndicate/0.1 (...)``)."""
    return (user_agent.split("/", 1)[0].split() or ["*"])[0]


@dataclass(frozen=True)
class RobotsAnswer:
    """What fetching a robots.txt brought: a state, and for ``rules`` the file's text."""

    state: State
    body: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RobotsRules:
    """One origin's cached robots.txt verdict, valid until ``expires`` (epoch seconds)."""

    origin: str
    state: State
    body: str
    expires: float
    reason: str = ""

    @cached_property
    def parser(self) -> Protego:
        """The parsed file (an empty one for ``allow``/``disallow``)."""
        return Protego.parse(self.body if self.state == "rules" else "")

    def allowed(self, url: str, token: str) -> bool:
        """Whether ``token``'s group may fetch ``url``; robots.txt itself always may."""
        if urlsplit(url).path == ROBOTS_PATH:
            return True
        if self.state != "rules":
            return self.state == "allow"
        return bool(self.parser.can_fetch(url, token))

    def crawl_delay(self, token: str) -> float | None:
        """Seconds between requests the group asks for (``Crawl-delay``, or ``Request-rate``'s pace)."""
        if self.state != "rules":
            return None
        delays = []
        delay = self.parser.crawl_delay(token)
        if delay is not None:
            delays.append(float(delay))
        rate = self.parser.request_rate(token)
        if rate is not None and rate.requests:
            delays.append(float(rate.seconds) / float(rate.requests))
        return max(delays) if delays else None

    def sitemaps(self) -> list[str]:
        """The ``Sitemap:`` URLs the file lists (they belong to no group)."""
        return list(self.parser.sitemaps) if self.state == "rules" else []

    def to_json(self) -> str:
        """The entry as stored in Redis."""
        data = {"state": self.state, "body": self.body, "expires": self.expires, "reason": self.reason}
        return json.dumps(data)

    @classmethod
    def from_json(cls, origin: str, raw: bytes | str) -> RobotsRules | None:
        """An entry read back from Redis, or None if it is not one."""
        try:
            data = json.loads(raw)
            state = data["state"]
            if state not in ("rules", "allow", "disallow"):
                return None
            return cls(origin, state, str(data["body"]), float(data["expires"]), str(data.get("reason", "")))
        except (ValueError, KeyError, TypeError):
            return None


class Robots:
    """robots.txt rules per origin for one user agent, fetched on demand and cached (see the module doc).

    ``fetch`` gets a robots.txt URL and returns a :class:`RobotsAnswer`; it may raise
    :class:`~worker.errors.HostBusy` (nothing is cached then). ``clock`` gives epoch seconds.
    """

    def __init__(
        self,
        fetch: Callable[..., RobotsAnswer],
        *,
        user_agent: str,
        ttl: float = 86_400.0,
        error_ttl: float = 600.0,
        max_crawl_delay: float = 60.0,
        redis: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Cache for ``ttl`` seconds (``error_ttl`` after an unreachable file), in ``redis`` if given."""
        self.fetch = fetch
        self.token = product_token(user_agent)
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.max_crawl_delay = max_crawl_delay
        self.redis = redis
        self.clock = clock
        self._local: dict[str, RobotsRules] = {}
        self._lock = threading.Lock()
        self._warned = False

    # --- what part of the pipeline asks -----------------------------------------------------------

    def rules(self, url: str, **fetch_options: Any) -> RobotsRules:
        """The rules for ``url``'s origin: cached, else fetched now (``fetch_options`` go to ``fetch``)."""
        origin = origin_of(url)
        cached = self.cached(url)
        if cached is not None:
            return cached
        won: bool | None = None  # None: no Redis (or it is down), fetch on our own
        if self.redis is not None:
            # One fetch per origin across every worker: the others wait their turn (HostBusy, a
            # reschedule, never a sleep) and then read what the winner stored.
            won = self._redis_call(
                lambda: bool(self.redis.set(FETCHING_PREFIX + origin, "1", nx=True, px=10_000))
            )
            if won is False:
                raise HostBusy(f"robots.txt of {origin} is being fetched by another worker", retry_after=0.2)
        try:
            return self._fetch_rules(origin, url, **fetch_options)
        finally:
            if won:
                self._redis_call(lambda: self.redis.delete(FETCHING_PREFIX + origin))

    def _fetch_rules(self, origin: str, url: str, **fetch_options: Any) -> RobotsRules:
        answer = self.fetch(robots_url(url), **fetch_options)
        ttl = self.error_ttl if answer.state == "disallow" else self.ttl
        rules = RobotsRules(origin, answer.state, answer.body, self.clock() + ttl, answer.reason)
        if answer.reason:
            log.info("robots.txt of %s: %s (%s)", origin, answer.state, answer.reason)
        self._store(rules)
        return rules

    def allowed(self, url: str, **fetch_options: Any) -> bool:
        """Whether our user agent may fetch ``url`` (fetching the origin's robots.txt if needed)."""
        return self.rules(url, **fetch_options).allowed(url, self.token)

    def crawl_delay(self, url: str, **fetch_options: Any) -> float | None:
        """The ``Crawl-delay`` for our group at ``url``'s origin, capped at ``fetch.max_crawl_delay``."""
        return self.capped_crawl_delay(self.rules(url, **fetch_options))

    def known_crawl_delay(self, url: str) -> float | None:
        """Like :meth:`crawl_delay` but from the cache only (None when robots.txt is not cached)."""
        cached = self.cached(url)
        return None if cached is None else self.capped_crawl_delay(cached)

    def capped_crawl_delay(self, rules: RobotsRules) -> float | None:
        """``rules``' ``Crawl-delay`` for our group, capped at ``fetch.max_crawl_delay``."""
        delay = rules.crawl_delay(self.token)
        return None if delay is None else min(delay, self.max_crawl_delay)

    def sitemaps(self, url: str, **fetch_options: Any) -> list[str]:
        """The ``Sitemap:`` lines of the robots.txt of ``url``'s origin (for sitemap sources)."""
        return self.rules(url, **fetch_options).sitemaps()

    # --- the cache ------------------------------------------------------------------------------

    def cached(self, url: str) -> RobotsRules | None:
        """The unexpired cached rules of ``url``'s origin, from memory or Redis; None if none."""
        origin = origin_of(url)
        now = self.clock()
        with self._lock:
            local = self._local.get(origin)
        if local is not None and local.expires > now:
            return local
        if self.redis is None:
            return None
        raw = self._redis_call(lambda: self.redis.get(KEY_PREFIX + origin))
        shared = RobotsRules.from_json(origin, raw) if raw else None
        if shared is None or shared.expires <= now:
            return None
        with self._lock:
            self._local[origin] = shared
        return shared

    def forget(self, url: str) -> None:
        """Drop the cached rules of ``url``'s origin (everywhere), so the next use fetches them again."""
        origin = origin_of(url)
        with self._lock:
            self._local.pop(origin, None)
        if self.redis is not None:
            self._redis_call(lambda: self.redis.delete(KEY_PREFIX + origin))

    def _store(self, rules: RobotsRules) -> None:
        with self._lock:
            if len(self._local) >= _LOCAL_MAX:
                self._local.clear()
            self._local[rules.origin] = rules
        if self.redis is not None:
            # Redis only needs to drop it eventually; validity is the stored ``expires``.
            seconds = max(1, int(rules.expires - self.clock()) + 60)
            self._redis_call(lambda: self.redis.set(KEY_PREFIX + rules.origin, rules.to_json(), ex=seconds))

    def _redis_call(self, call: Callable[[], Any]) -> Any:
        """Run a Redis command; on a Redis error carry on with the in-process cache alone (logged once)."""
        try:
            result = call()
        except RedisError as exc:
            if not self._warned:
                log.warning("robots.txt cache: Redis unavailable (%s); caching per process", exc)
                self._warned = True
            return None
        self._warned = False
        return result
