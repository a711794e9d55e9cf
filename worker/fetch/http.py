"""Polite, bounded and SSRF-guarded HTTP fetching of partner pages.

:class:`Fetcher` sends every request through one :class:`~worker.http.HttpClient` built from the
:class:`~config.model.FetchPolicy`, which owns the user agent, the timeout, one deadline over the
whole exchange (enforced by a watchdog that shuts the socket), the streamed size cap (decoded
bytes) and the SSRF guard (:mod:`worker.ssrf`). What is the Fetcher's own:

- it follows redirects itself, so that every hop passes the guard, robots.txt and the host limit,
  and the deadline covers the whole chain; each hop's connection goes to the addresses the guard
  checked when connecting (:class:`~worker.http.HttpClient` pins them), not to a second answer
  from DNS;
- politeness: robots.txt (:mod:`worker.fetch.robots`, exposed as :attr:`Fetcher.robots`) is
  obeyed for our user agent, a disallowed URL raises :class:`~worker.errors.Disallowed` and is
  never requested; requests to one host (``host:port``) are spaced by
  ``max(fetch.host_interval, Crawl-delay)`` across all workers (:mod:`worker.fetch.hostlimit`),
  and a host over budget raises :class:`~worker.errors.HostBusy` with ``retry_after`` *before*
  anything is sent (the task reschedules itself; it does not sleep). A granted fetch holds its
  hosts' turns until its redirect chain is over and gives them back then, so the interval counts
  from the end of one exchange to the start of the next. robots.txt itself is one request under
  the same limit (made while the host's Crawl-delay is not yet known, so under the interval last
  in force there). Hops of one redirect chain on a host already granted in that chain go out at
  once, so a same-host redirect cannot make a task reschedule for ever;
- two trust levels. Source fetches (crawls, the links they find, sitemaps, feeds) obey
  ``fetch.allow_hosts``. URLs someone pushed over the ingest API (``get(..., ingest=True)``)
  obey it too, and are *additionally* refused on Syndicate's own ports (web app, Flower, Redis:
  the ``deny`` rules :func:`worker.ssrf.own_service_rules` builds from the settings) on loopback
  and this host's addresses, on every redirect hop and for their robots.txt. So the demo source
  may fetch ``http://127.0.0.1:8000/demo/`` (``allow_hosts: ["127.0.0.1:8000"]``), while an
  ingested ``http://127.0.0.1:8000/api/status`` or ``http://localhost:5555/`` is never fetched;
- it sends conditional GETs; it refuses content that is not a document (images, PDFs, video...)
  before the body is read; and it turns every failure and every status (as
  :func:`worker.http.classify` reads it) into one of the :mod:`worker.errors` fetch errors, so
  that callers only ever see :class:`~worker.errors.FetchError`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from config.model import FetchPolicy
from feeds.http import parse_retry_after
from worker import metrics
from worker.errors import (
    BlockedURL,
    Disallowed,
    FetchError,
    HostBusy,
    HTTPStatusError,
    TooLarge,
    TransientFetchError,
    TransportError,
    UnsupportedContent,
)
from worker.fetch.hostlimit import HostLimiter, LocalHostLimiter, RedisHostLimiter
from worker.fetch.robots import ROBOTS_PATH, Robots, RobotsAnswer
from worker.http import DEADLINE_FACTOR, Answer, HttpClient, Outcome, retry_delay
from worker.ssrf import Guard, HostRule, check_url

__all__ = ["DEFAULT_ACCEPT", "FetchResult", "Fetcher", "check_url", "parse_retry_after"]

log = logging.getLogger(__name__)

DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The whole fetch (all hops and the body) has a deadline of this many times ``policy.timeout``.
TOTAL_TIMEOUT_FACTOR = DEADLINE_FACTOR
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only these carry the document asked for; 201, 204 or 206 would be a server misunderstanding us.
DOCUMENT_STATUSES = frozenset({200, 203})
# RFC 9309: follow at least five redirects for robots.txt.
ROBOTS_REDIRECTS = 5
ROBOTS_ACCEPT = "text/plain,*/*;q=0.1"

_ACCEPTED_TYPES = frozenset(
    {
        "application/xhtml+xml",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/x-rss+xml",
        "application/json",
        "application/feed+json",
        "application/ld+json",
        # Sitemaps are often published as .xml.gz files served with one of these.
        "application/gzip",
        "application/x-gzip",
    }
)
# Types some servers send for anything; the body decides (see ``_sniff_document``).
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})


@dataclass(frozen=True)
class FetchResult:
    """One successful fetch: a 200 with its body, or a 304 (``not_modified``) with an empty body.

    ``headers`` is a read-only, case-insensitive view of the final response's headers and
    ``content_type`` its Content-Type header as sent, parameters included
    (``text/html; charset=iso-8859-1``), so that decoders see the charset; see :attr:`media_type`.
    """

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        """True when the server answered 304: the caller's cached copy is still current."""
        return self.status == 304

    @property
    def media_type(self) -> str | None:
        """The Content-Type without parameters, lower-cased (``text/html``), or None."""
        return _media_type(self.content_type) or None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the Content-Type header, if the server sent one."""
        return _content_type_param(self.content_type or "", "charset")


def _content_type_param(header: str, name: str) -> str | None:
    for param in header.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip("\"'") or None
    return None


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _is_document_type(media_type: str) -> bool:
    return (
        media_type.startswith("text/")
        or media_type in _ACCEPTED_TYPES
        or media_type.endswith(("+xml", "+json"))
    )


def _sniff_document(body: bytes) -> bool:
    """Whether a body of unknown type looks like markup, JSON or gzip (a compressed sitemap)."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"<", b"{", b"[", b"\x1f\x8b")) or not head


def _wants_body(response: requests.Response) -> bool:
    """``before_body`` hook: read only a document's body; refuse non-documents before reading them."""
    if response.status_code not in DOCUMENT_STATUSES:
        return False  # redirects, 304s and error pages: the headers say all the Fetcher uses
    media_type = _media_type(response.headers.get("Content-Type"))
    if media_type not in _SNIFFED_TYPES and not _is_document_type(media_type):
        raise UnsupportedContent(f"unsupported content type {media_type!r}", response.url)
    return True


def _wants_robots_body(response: requests.Response) -> bool:
    """``before_body`` hook for robots.txt: only a 2xx body is read, whatever its type."""
    return 200 <= response.status_code < 300


def host_key(url: str) -> str:
    """``host:port`` of ``url``, the unit the per-host limit counts."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    return f"{host}:{parts.port or (443 if scheme == 'https' else 80)}"


def _fetch_error(exc: TransportError) -> FetchError:
    """The fetch error for an exchange that brought no usable answer."""
    message, url = str(exc), exc.url
    if exc.blocked:
        return BlockedURL(message, url)
    if exc.too_large:
        return TooLarge(message, url)
    if exc.undecodable:
        return FetchError(message, url)
    return TransientFetchError(message, url)


class Fetcher:
    """Fetches URLs under a :class:`FetchPolicy`; reuse one per worker for connection pooling.

    ``redis`` (a ``redis.Redis``) makes the robots.txt cache and the per-host limit shared by every
    worker; without it both hold per process. ``deny`` rules (see
    :func:`worker.ssrf.own_service_rules`) apply to ``ingest=True`` fetches only. A session passed
    in is used as is (and not closed by :meth:`close`), and must have
    :class:`~worker.http.WatchedAdapter` mounted, which pins each connection to the addresses the
    guard checked (else every fetch is refused as blocked); the Fetcher's own session has it and
    ignores proxy and ``.netrc`` settings from the environment, so that partner requests never
    carry local credentials and always go where the guard looked.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        session: requests.Session | None = None,
        *,
        redis: Any = None,
        deny: Iterable[HostRule] = (),
        limiter: HostLimiter | None = None,
    ) -> None:
        """Use ``policy`` for every request, on ``session`` or a new session of its own."""
        self.policy = policy
        self.http = HttpClient(
            user_agent=policy.user_agent,
            timeout=policy.timeout,
            max_bytes=policy.max_bytes,
            allow_hosts=policy.allow_hosts,
            session=session,
        )
        self.guard = Guard(policy.allow_hosts, setting="fetch.allow_hosts")
        self.ingest_guard = self.guard.with_deny(deny)
        self.limiter: HostLimiter = limiter or (
            RedisHostLimiter(redis) if redis is not None else LocalHostLimiter()
        )
        self.robots = Robots(
            self._fetch_robots,
            user_agent=policy.user_agent,
            ttl=policy.robots_ttl,
            error_ttl=policy.robots_error_ttl,
            max_crawl_delay=policy.max_crawl_delay,
            redis=redis,
        )

    @property
    def session(self) -> requests.Session:
        """The pooled session requests go through."""
        return self.http.session

    def __enter__(self) -> Fetcher:
        """Use the Fetcher as a context manager that closes its own session."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the ``with`` block."""
        self.close()

    def close(self) -> None:
        """Release pooled connections (only of a session this Fetcher created)."""
        self.http.close()

    def check(self, url: str, *, ingest: bool = False) -> None:
        """Raise :class:`BlockedURL` if ``url`` may not be fetched (``ingest``: as a pushed URL).

        Only the guard: nothing is sent. A host that does not resolve raises
        :class:`TransientFetchError`.
        """
        (self.ingest_guard if ingest else self.guard).check(url)

    def host_interval(self, url: str) -> float:
        """Least seconds between requests to ``url``'s host: ``host_interval`` or a cached Crawl-delay."""
        return self._interval(url)[0]

    def _interval(self, url: str) -> tuple[float, bool]:
        """The host's interval as far as this worker knows, and whether it is known (robots.txt read)."""
        if not self.policy.robots:
            return self.policy.host_interval, True
        rules = self.robots.cached(url)
        if rules is None:
            return self.policy.host_interval, False
        return max(self.policy.host_interval, self.robots.capped_crawl_delay(rules) or 0.0), True

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = DEFAULT_ACCEPT,
        ingest: bool = False,
        patience: float = 0.0,
    ) -> FetchResult:
        """GET ``url``, following up to ``policy.max_redirects`` redirects, each one checked.

        With ``etag`` / ``last_modified`` the request is conditional and a 304 answer comes back
        as a result whose :attr:`~FetchResult.not_modified` is true. ``ingest=True`` for a URL
        pushed over the ingest API (Syndicate's own ports are refused too). ``patience`` is how
        long this call may *sleep* waiting for a busy host (for the CLI; workers leave it 0 and
        reschedule on :class:`HostBusy`). Raises :class:`BlockedURL`, :class:`Disallowed`
        (robots.txt; nothing was sent for this URL), :class:`HostBusy` (nothing was sent),
        :class:`TooLarge`, :class:`UnsupportedContent`, :class:`HTTPStatusError` (permanent 4xx),
        :class:`TransientFetchError` (timeouts, connection errors, 408/425/429/5xx) or
        :class:`FetchError` (anything else, such as a redirect loop or a broken encoding).
        """
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        guard = self.ingest_guard if ingest else self.guard
        answer = self._chain(
            url,
            headers,
            guard=guard,
            max_redirects=self.policy.max_redirects,
            patience=patience,
            obey_robots=self.policy.robots,
        )
        return self._finish(url, answer, etag, last_modified)

    def _chain(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        guard: Guard,
        max_redirects: int,
        patience: float,
        obey_robots: bool,
        before_body: Any = _wants_body,
    ) -> Answer:
        """The final answer for ``url`` after its redirects; each hop guarded, robots-checked, limited."""
        granted: set[str] = set()
        holder = uuid.uuid4().hex
        try:
            return self._hops(
                url,
                headers,
                guard=guard,
                max_redirects=max_redirects,
                patience=patience,
                obey_robots=obey_robots,
                before_body=before_body,
                granted=granted,
                holder=holder,
            )
        finally:
            # Given back only now, so the host's interval counts from when our request was done with it.
            for key in granted:
                self.limiter.release(key, holder)

    def _hops(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        guard: Guard,
        max_redirects: int,
        patience: float,
        obey_robots: bool,
        before_body: Any,
        granted: set[str],
        holder: str,
    ) -> Answer:
        """:meth:`_chain`'s loop; the hosts it was granted are added to ``granted`` (under ``holder``)."""
        deadline: float | None = None
        current = url
        for _hop in range(max_redirects + 1):
            guard.check(current)
            if obey_robots and urlsplit(current).path != ROBOTS_PATH:
                self._obey_robots(current, guard, patience)
            self._acquire(current, granted, patience, holder)
            if deadline is None:
                deadline = time.monotonic() + self.policy.timeout * TOTAL_TIMEOUT_FACTOR
            elif time.monotonic() > deadline:
                raise TransientFetchError("redirects took too long", current)
            try:
                # The check above refuses early (before robots.txt and the host limit); the one the
                # connection trusts is the guard's again, on the addresses it connects to (pinned),
                # so a name that resolves elsewhere by now (DNS rebinding) cannot get through.
                answer = metrics.timed_fetch(
                    self.http.get,
                    current,
                    headers=headers,
                    before_body=before_body,
                    deadline=deadline,
                    guard=guard,
                )
            except TransportError as exc:
                error = _fetch_error(exc)
                if isinstance(error, TransientFetchError):  # timed out, refused, reset: spare the host
                    self.limiter.back_off(host_key(current), self._interval(current)[0])
                raise error from None
            if answer.status not in REDIRECT_STATUSES:
                return answer
            location = answer.headers.get("Location")
            if not location:
                raise HTTPStatusError(f"redirect {answer.status} without Location", current, answer.status)
            log.debug("redirect %s %s -> %s", answer.status, current, location)
            current = urljoin(current, location.strip())
        raise HTTPStatusError(f"more than {max_redirects} redirects", current)

    def _obey_robots(self, url: str, guard: Guard, patience: float) -> None:
        """Raise :class:`Disallowed` if robots.txt forbids ``url``; a transient error while it is unreachable.

        RFC 9309 says to crawl nothing while robots.txt is unreachable; that is an outage, not a
        verdict on the URL, so it is a :class:`TransientFetchError` retried once the short cache
        entry expired, not a :class:`Disallowed` that would skip the URL for good. A robots.txt the
        SSRF guard refuses (its host, a redirect hop, or the address its connection would go to)
        refuses the page too, as :class:`BlockedURL`: nothing is known about the site's rules, and
        a host that rebinds between two lookups is not one to ask again.
        """
        try:
            rules = self.robots.rules(url, guard=guard, patience=patience)
        except BlockedURL as exc:
            # The guard refused robots.txt (or a hop of its redirects): the page is not fetched either.
            raise BlockedURL(f"robots.txt was refused ({exc}), so {url} is not fetched", url) from None
        if rules.state == "disallow":
            retry_after = max(1.0, rules.expires - self.robots.clock())
            raise TransientFetchError(
                f"robots.txt of {rules.origin} is unreachable ({rules.reason}): nothing is fetched there",
                url,
                retry_after=retry_after,
            )
        if not rules.allowed(url, self.robots.token):
            raise Disallowed(f"robots.txt disallows {url} for {self.robots.token}", url)

    def _acquire(self, url: str, granted: set[str], patience: float, holder: str) -> None:
        """Take the host's turn, or raise :class:`HostBusy`; a host granted earlier in this chain goes on."""
        key = host_key(url)
        if key in granted:
            return
        interval, known = self._interval(url)
        # Held for the whole chain at most (its deadline, plus slack for the watchdog's close); none
        # when the host is known to be unlimited.
        hold = self.policy.timeout * TOTAL_TIMEOUT_FACTOR + 1.0 if interval > 0 or not known else 0.0
        waited_until = time.monotonic() + patience
        while True:
            wait = self.limiter.acquire(key, interval, hold=hold, known=known, holder=holder, who=url)
            if wait <= 0:
                granted.add(key)
                return
            if time.monotonic() + wait > waited_until:
                raise HostBusy(
                    f"{key} is busy: one request per {interval:g}s; next turn in {wait:.2f}s",
                    url,
                    retry_after=wait,
                )
            time.sleep(wait)

    def _fetch_robots(self, url: str, *, guard: Guard | None = None, patience: float = 0.0) -> RobotsAnswer:
        """Fetch one robots.txt and say what it means (RFC 9309 2.3.1; see :mod:`worker.fetch.robots`)."""
        try:
            answer = self._chain(
                url,
                {"Accept": ROBOTS_ACCEPT},
                guard=guard or self.guard,
                max_redirects=ROBOTS_REDIRECTS,
                patience=patience,
                obey_robots=False,
                before_body=_wants_robots_body,
            )
        except (HostBusy, BlockedURL):
            raise  # a refused robots.txt refuses its origin's pages (see _obey_robots)
        except TransientFetchError as exc:
            return RobotsAnswer("disallow", reason=f"unreachable: {exc}")
        except FetchError as exc:
            return RobotsAnswer("allow", reason=f"unavailable: {exc}")
        status = answer.status
        if 200 <= status < 300:
            return RobotsAnswer("rules", answer.body.decode("utf-8", errors="replace"))
        if status == 429 or status >= 500:
            return RobotsAnswer("disallow", reason=f"unreachable: HTTP {status}")
        return RobotsAnswer("allow", reason=f"unavailable: HTTP {status}")

    def _finish(self, url: str, answer: Answer, etag: str | None, last_modified: str | None) -> FetchResult:
        """The result for the final (non-redirect) answer, or the fetch error its status means."""
        status, final_url = answer.status, answer.url
        headers = MappingProxyType(answer.headers)
        content_type = headers.get("Content-Type", "").strip() or None
        outcome = answer.outcome
        if outcome is Outcome.NOT_MODIFIED and (etag or last_modified):
            return FetchResult(
                url=url,
                final_url=final_url,
                status=304,
                headers=headers,
                body=b"",
                content_type=content_type,
                etag=headers.get("ETag") or etag,
                last_modified=headers.get("Last-Modified") or last_modified,
            )
        if outcome.retryable:
            retry_after = retry_delay(headers, status=status)
            raise TransientFetchError(f"HTTP {status}", final_url, status=status, retry_after=retry_after)
        if status not in DOCUMENT_STATUSES:
            raise HTTPStatusError(f"HTTP {status}", final_url, status)
        media_type = _media_type(content_type)
        if media_type in _SNIFFED_TYPES and not _sniff_document(answer.body):
            shown = media_type or "(none)"
            raise UnsupportedContent(f"content of type {shown!r} is not a document", final_url)
        return FetchResult(
            url=url,
            final_url=final_url,
            status=status,
            headers=headers,
            body=answer.body,
            content_type=content_type,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
        )
