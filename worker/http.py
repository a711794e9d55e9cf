"""The one small HTTP client layer that fetching, sharing and WebSub pings all use.

:class:`HttpClient` owns one pooled :class:`requests.Session` per process and purpose and sends
every request the same way: Syndicate's user agent, a connect/read timeout plus one deadline for
the whole exchange (connect, headers and body) enforced by a watchdog that shuts the socket when
it passes (a per-read timeout alone lets a server that drips one byte at a time hold a worker for
ever), a cap on the body size while it streams (decoded bytes, so
a gzip bomb counts at its inflated size), no redirects followed behind the caller's back, no proxy
or ``.netrc`` credentials from the environment, and the SSRF guard (:mod:`worker.ssrf`) for URLs
that did not come from the operator's config, applied where it counts: the connection resolves the
name once, checks every address and connects to exactly those (TLS and the Host header still use
the name), so DNS rebinding cannot move a guarded request elsewhere. It returns an
:class:`Answer` (status, headers, the body read in full) or raises :class:`TransportError`, which
says whether the request may have reached the server.

What an answer *means* is decided once, here: :func:`classify` maps a status to an
:class:`Outcome`, and :func:`retry_delay` reads every rate-limit signal networks send
(``Retry-After`` as seconds or an HTTP date; ``X-RateLimit-Reset`` as ISO 8601 (Mastodon) or epoch
seconds (Discord); X's ``x-rate-limit-reset``; ``RateLimit-Reset`` with ``RateLimit-Policy``
(atproto); Discord's JSON ``retry_after``; Telegram's ``parameters.retry_after``). Fetch, share and
WebSub turn the outcome into their branch of :mod:`worker.errors`.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from feeds.http import parse_http_date, parse_retry_after
from worker.errors import BlockedURL, TransientFetchError, TransportError
from worker.ssrf import Guard, HostRule

DEFAULT_USER_AGENT = "Syndicate/0.1 (+https://github.com/syndicate-news/syndicate)"
CHUNK_SIZE = 64 * 1024
# A per-read timeout does not bound a server that drips one byte just inside it, so a whole
# exchange (connect, headers and body) also has a deadline of this many times the timeout.
DEADLINE_FACTOR = 3
# Epoch seconds are at least this large; anything smaller in a reset header is a delay.
_EPOCH_FLOOR = 1_000_000_000
# Quota header families: the common X-RateLimit-*, X's x-rate-limit-* and the IETF/atproto RateLimit-*.
_QUOTA_PREFIXES = ("x-ratelimit-", "x-rate-limit-", "ratelimit-")


class Outcome(enum.Enum):
    """What an HTTP status means to Syndicate, whatever the caller does with it."""

    OK = "ok"  # 2xx
    NOT_MODIFIED = "not_modified"  # 304
    REDIRECT = "redirect"  # other 3xx
    RATE_LIMITED = "rate_limited"  # 429: wait as told, then retry
    UNAVAILABLE = "unavailable"  # 408, 425, 5xx: retry with backoff
    AUTH = "auth"  # 401, 403: credentials or permissions; retrying will not help
    GONE = "gone"  # 404, 410: the resource (or a webhook) does not exist
    UPGRADE = "upgrade"  # 426: the client speaks a retired API version
    REJECTED = "rejected"  # any other 4xx: this request is wrong

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later."""
        return self in (Outcome.RATE_LIMITED, Outcome.UNAVAILABLE)


def classify(status: int) -> Outcome:
    """The :class:`Outcome` of an HTTP ``status``."""
    if 200 <= status < 300:
        return Outcome.OK
    if status == 304:
        return Outcome.NOT_MODIFIED
    if 300 <= status < 400:
        return Outcome.REDIRECT
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (408, 425) or status >= 500:
        return Outcome.UNAVAILABLE
    if status in (401, 403):
        return Outcome.AUTH
    if status in (404, 410):
        return Outcome.GONE
    if status == 426:
        return Outcome.UPGRADE
    return Outcome.REJECTED


@dataclass(frozen=True)
class Answer:
    """One HTTP response, read in full (up to the size cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def outcome(self) -> Outcome:
        """What the status means (see :func:`classify`)."""
        return classify(self.status)

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def text(self, limit: int = 300) -> str:
        """The start of the body as one line of text, for error messages."""
        text = " ".join(self.body[: limit * 4].decode("utf-8", errors="replace").split())
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    """A finite number from a JSON value or a header; None for anything else ("soon", NaN, inf, True)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _reset_delay(value: str, now: datetime) -> float | None:
    """Seconds until a reset header's moment: epoch seconds, ISO 8601, an HTTP date or a delay."""
    text = value.strip()
    number = _number(text)
    if number is not None:
        if number >= _EPOCH_FLOOR:
            return max(0.0, number - now.timestamp())
        return max(0.0, number)
    moment = parse_http_date(text)
    if moment is None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def retry_delay(
    headers: Mapping[str, str], body: Any = None, *, now: datetime | None = None, status: int | None = None
) -> float | None:
    """Seconds the remote asked us to wait, from any rate-limit signal it sent; None if it said nothing.

    Explicit answers win over quota headers: ``Retry-After``, then a JSON body's ``retry_after``
    (Discord, float seconds) or ``parameters.retry_after`` (Telegram). Quota headers count only
    when the quota is used up (``Remaining: 0``) or the answer is a 429: ``X-RateLimit-Reset-After``
    (Discord, seconds), ``X-RateLimit-Reset`` (ISO 8601 from Mastodon, epoch seconds from
    Discord), ``x-rate-limit-reset`` (X, epoch seconds) and ``RateLimit-Reset`` (atproto: epoch
    seconds, beside ``RateLimit-Policy``; the IETF draft: delta seconds). Values that are not a
    number or a date are ignored, as if the header were absent.
    """
    now = now or datetime.now(UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    explicit = parse_retry_after(lowered.get("retry-after"), now=now)
    if explicit is not None:
        return explicit
    if isinstance(body, Mapping):
        hinted = _number(body.get("retry_after"))
        parameters = body.get("parameters")
        if hinted is None and isinstance(parameters, Mapping):
            hinted = _number(parameters.get("retry_after"))
        if hinted is not None and hinted >= 0:
            return hinted
    exhausted = status == 429
    for prefix in _QUOTA_PREFIXES:
        remaining = _number(lowered.get(prefix + "remaining"))
        if remaining is not None and remaining <= 0:
            exhausted = True
    if not exhausted:
        return None
    reset_after = _number(lowered.get("x-ratelimit-reset-after"))
    if reset_after is not None and reset_after >= 0:
        return reset_after
    for prefix in _QUOTA_PREFIXES:
        value = lowered.get(prefix + "reset")
        if value:
            delay = _reset_delay(value, now)
            if delay is not None:
                return delay
    return None


# --- the deadline watchdog ------------------------------------------------------------------------


class _Watch:
    """One exchange's deadline; ``conn`` is the connection carrying it once a request starts."""

    __slots__ = ("conn", "deadline", "done", "fired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: _WatchedMixin | None = None
        self.fired = False
        self.done = False


class _Watchdog:
    """One daemon thread per process that shuts the socket of every exchange still running at its deadline.

    ``shutdown`` (not ``close``) wakes a thread blocked reading the socket, and it is called on the
    plain socket so that an SSL wrapper's state is not touched from this thread. A connection is
    reused from the pool by the next request only after it registered its own watch, so a late
    watch of an earlier request never shuts a socket another request is using.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float) -> _Watch:
        """Start watching an exchange that must end by ``deadline`` (a monotonic moment)."""
        watch = _Watch(deadline)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="syndicate-http-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return watch

    def done(self, watch: _Watch) -> None:
        """The exchange ended: its deadline no longer matters."""
        with self._cond:
            watch.done = True

    def attach(self, watch: _Watch, conn: _WatchedMixin) -> None:
        """``conn`` carries ``watch``'s exchange from now on."""
        with self._cond:
            watch.conn = conn
            conn.syndicate_watch = watch

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, watch = heapq.heappop(self._heap)
                self._fire(watch)

    @staticmethod
    def _fire(watch: _Watch) -> None:
        """Called with the lock held: shut the exchange's socket, if it still has one."""
        watch.fired = True
        conn = watch.conn
        if conn is None or conn.syndicate_watch is not watch:
            return
        _shutdown(conn)

    def fired(self, watch: _Watch) -> bool:
        """Whether ``watch``'s deadline passed while its exchange ran."""
        with self._cond:
            return watch.fired


def _shutdown(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


_WATCHDOG = _Watchdog()
_current = threading.local()


class _WatchedMixin:
    """A urllib3 connection under the deadline watchdog and, when guarded, pinned to checked addresses.

    The calling thread's watch is registered whenever a request starts on the connection. While a
    guarded request runs (``_current.guard``), a new connection resolves the host once through the
    guard (:meth:`worker.ssrf.Guard.resolve`) and connects to exactly the addresses it checked, and
    a pooled connection carries the request only if the address it is connected to passes the
    guard (:meth:`worker.ssrf.Guard.check_peer`). urllib3 still uses the *name* for TLS SNI,
    certificate verification and the Host header, since only the socket's destination changes.
    """

    syndicate_watch: _Watch | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard: Guard | None = getattr(_current, "guard", None)
        if guard is not None and getattr(self, "sock", None) is not None:
            self._check_peer(guard)
        watch: _Watch | None = getattr(_current, "watch", None)
        if watch is not None:
            _WATCHDOG.attach(watch, self)
        else:
            self.syndicate_watch = None
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch = self.syndicate_watch
        if watch is not None and _WATCHDOG.fired(watch):
            _shutdown(self)  # the deadline passed while connecting

    def _new_conn(self) -> socket.socket:
        guard: Guard | None = getattr(_current, "guard", None)
        conn = cast(HTTPConnection, self)
        if guard is None:
            return super()._new_conn()  # type: ignore[misc]
        return _pinned_socket(conn, guard)

    def _check_peer(self, guard: Guard) -> None:
        """Refuse (BlockedURL) a guarded request on a pooled connection to an address the guard refuses."""
        conn = cast(HTTPConnection, self)
        try:
            raw = str(conn.sock.getpeername()[0]).split("%", 1)[0]
            peer = ipaddress.ip_address(raw)
        except (OSError, ValueError, IndexError):
            # Not connected any more (or not over IP): drop it, so the request opens a new, pinned one.
            conn.close()
            return
        guard.check_peer(conn._dns_host, conn.port, peer)


def _pinned_socket(conn: HTTPConnection, guard: Guard) -> socket.socket:
    """A socket to an address ``guard`` resolved and checked for ``conn``'s host; no second lookup.

    Raises BlockedURL or TransientFetchError (from the guard; :class:`HttpClient` maps them) or,
    like urllib3, ConnectTimeoutError / NewConnectionError when no address answers.
    """
    host, port = conn._dns_host, conn.port
    addresses = guard.resolve(host, port)
    error: OSError | None = None
    for address in addresses:
        try:
            # An address literal: getaddrinfo only parses it, nothing is looked up.
            return create_connection(
                (str(address), port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except OSError as exc:
            error = exc
    shown = ", ".join(map(str, addresses))
    if isinstance(error, TimeoutError):
        raise ConnectTimeoutError(
            conn, f"Connection to {host} ({shown}) timed out. (connect timeout={conn.timeout})"
        ) from error
    message = f"Failed to establish a new connection to {host} at {shown}: {error}"
    raise NewConnectionError(conn, message) from error


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """A requests adapter whose connections obey the deadline watchdog and pin guarded requests.

    A guarded request never goes through a proxy: the proxy would resolve the name itself, where
    the guard cannot look. :class:`HttpClient`'s own sessions ignore proxy settings from the
    environment anyway; a proxy set on a session passed in makes its guarded requests fail as
    blocked (unguarded ones, to operator-configured URLs, may use it).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy's pool manager, for unguarded requests only."""
        if getattr(_current, "guard", None) is not None:
            raise BlockedURL(
                f"a guarded request is not sent through a proxy ({proxy}): "
                "the proxy would resolve the name again, where the SSRF guard cannot look"
            )
        return super().proxy_manager_for(proxy, **proxy_kwargs)


class HttpClient:
    """Sends requests under one policy and reuses its connections; build one per process and purpose.

    ``allow_hosts`` (see :mod:`worker.ssrf`) and ``deny`` make the SSRF guard used for requests
    made with ``guard=True``; a request may also pass its own :class:`~worker.ssrf.Guard`.
    Operator-configured URLs (API base URLs, webhook URLs) are sent unguarded. A guarded request
    is checked twice: its URL's form before anything else, and the host's addresses by the
    connection itself, which resolves the name once and connects to exactly the addresses it
    checked (no DNS rebinding between check and connect; see :class:`_WatchedMixin`). The deadline
    watchdog and the pinning cover sessions this client creates; a session passed in keeps its own
    adapters, so its exchanges are bounded only by the per-read timeout and the between-chunks
    deadline check, and its guarded requests are refused unless it has :class:`WatchedAdapter`
    mounted.
    """

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 15.0,
        max_bytes: int = 1_000_000,
        allow_hosts: Collection[str] = (),
        deny: Iterable[HostRule] = (),
        session: requests.Session | None = None,
    ) -> None:
        """Use the given policy for every request, on ``session`` or a new session of its own."""
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_hosts = tuple(allow_hosts)
        self.guard = Guard(self.allow_hosts, deny)
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.mount("http://", WatchedAdapter())
            session.mount("https://", WatchedAdapter())
        self.session = session

    def close(self) -> None:
        """Release pooled connections (only of a session this client created)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> HttpClient:
        """Use the client as a context manager that closes its own session."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the ``with`` block."""
        self.close()

    def check(self, url: str, guard: Guard | None = None) -> None:
        """Apply ``guard`` (default: the client's) to ``url``; raise a ``blocked`` TransportError if refused.

        A host that does not resolve is a TransportError that is neither ``blocked`` nor ``sent``.
        """
        try:
            (guard or self.guard).check(url)
        except BlockedURL as exc:
            raise TransportError(str(exc), url, blocked=True) from None
        except TransientFetchError as exc:
            raise TransportError(str(exc), url) from None

    def _check_form(self, url: str, guard: Guard) -> None:
        """Before a guarded request: the URL's form (no DNS), and a session that can pin the connection."""
        try:
            guard.check_form(url)
        except BlockedURL as exc:
            raise TransportError(str(exc), url, blocked=True) from None
        try:
            adapter = self.session.get_adapter(url)
        except requests.exceptions.InvalidSchema as exc:
            raise TransportError(f"invalid URL: {exc}", url, blocked=True) from None
        if not isinstance(adapter, WatchedAdapter):
            raise TransportError(
                f"a guarded request needs a session with {WatchedAdapter.__name__} mounted "
                f"(this one has {type(adapter).__name__}), which connects to the addresses the guard checked",
                url,
                blocked=True,
            )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
        guard: bool | Guard = False,
        before_body: Callable[[requests.Response], bool | None] | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """Send one request and read the whole answer; redirects come back as 3xx answers.

        ``before_body`` sees the response once its headers arrived; it may raise to refuse the
        body (a content type the caller cannot use) or return False to leave it unread (the
        :class:`Answer` then has an empty body: an error page or a redirect the caller does not
        need). ``deadline`` (a :func:`time.monotonic` moment) bounds a caller's longer exchange,
        such as a chain of redirects; the request's own deadline is ``DEADLINE_FACTOR`` times the
        timeout, and the earlier of the two wins: connect, headers and body must all be in by then
        (the watchdog shuts the socket at that moment). ``guard`` is True for the client's SSRF
        guard or a :class:`~worker.ssrf.Guard` of the caller's. Raises :class:`TransportError`.
        """
        timeout = timeout if timeout is not None else self.timeout
        limit = max_bytes if max_bytes is not None else self.max_bytes
        pinned = (guard if isinstance(guard, Guard) else self.guard) if guard else None
        if pinned is not None:
            self._check_form(url, pinned)
        started = time.monotonic()
        ends = started + timeout * DEADLINE_FACTOR
        if deadline is not None:
            ends = min(ends, deadline)
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise TransportError("the deadline passed before the request was sent", url)
        # No single wait may outlast the deadline, so a late first byte is bounded too.
        wait = min(timeout, remaining)
        sent_headers = {"User-Agent": self.user_agent, **(headers or {})}
        watch = _WATCHDOG.watch(ends)
        _current.watch = watch
        _current.guard = pinned
        try:
            return self._exchange(
                method,
                url,
                headers=sent_headers,
                params=params,
                json=json,
                data=data,
                files=files,
                wait=wait,
                limit=limit,
                ends=ends,
                before_body=before_body,
                watch=watch,
            )
        except TransportError as exc:
            if _WATCHDOG.fired(watch):
                raise TransportError(
                    f"the answer took too long: not complete within the deadline of {ends - started:.3g}s",
                    url,
                    sent=True,
                ) from None
            raise exc from None
        finally:
            _current.watch = None
            _current.guard = None
            _WATCHDOG.done(watch)

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        wait: float,
        limit: int,
        ends: float,
        before_body: Callable[[requests.Response], bool | None] | None,
        watch: _Watch,
        **send: Any,
    ) -> Answer:
        """Send the request and read the answer (see :meth:`request`)."""
        try:
            response = self.session.request(
                method, url, **send, timeout=(wait, wait), allow_redirects=False, stream=True
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError(f"connecting timed out after {wait:g}s: {exc}", url) from None
        except requests.Timeout as exc:
            raise TransportError(f"no answer within {wait:g}s: {exc}", url, sent=True) from None
        except requests.ConnectionError as exc:
            raise TransportError(f"connection failed: {exc}", url, sent=_maybe_sent(exc)) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ) as exc:
            raise TransportError(f"invalid URL: {exc}", url, blocked=True) from None
        except requests.RequestException as exc:
            raise TransportError(f"request failed: {exc}", url) from None
        except BlockedURL as exc:  # the connection's guard refused the address (see _WatchedMixin)
            raise TransportError(str(exc), url, blocked=True) from None
        except TransientFetchError as exc:  # the connection's guard could not resolve the host
            raise TransportError(str(exc), url) from None
        with response:
            wanted = before_body(response) if before_body is not None else None
            body = b"" if wanted is False else _read_body(response, url, limit, ends)
            if _WATCHDOG.fired(watch):
                # A body without Content-Length ends at EOF, which is what the watchdog's shutdown looks like.
                raise TransportError(
                    "the answer took too long: the deadline passed while it arrived", url, sent=True
                )
            return Answer(
                status=response.status_code,
                headers=CaseInsensitiveDict(response.headers),
                body=body,
                url=url,
            )

    def get(self, url: str, **kwargs: Any) -> Answer:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Answer:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)


# Failures that happen before a single byte of the request is written.
_NOT_SENT = (
    urllib3.exceptions.NewConnectionError,  # refused, unreachable, name resolution (a subclass)
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.SSLError,  # the TLS handshake comes before the request
    urllib3.exceptions.ProxyError,
)


def _maybe_sent(exc: requests.ConnectionError) -> bool:
    """Whether a connection error may have happened after the request was written (reset, remote closed).

    urllib3 wraps the cause (in a MaxRetryError for connection failures, in a ProtocolError for a
    connection that broke while the answer was awaited); anything not known to be a failure to
    connect counts as possibly sent, since for a non-idempotent request that is the safe guess.
    """
    if isinstance(exc, requests.exceptions.ProxyError | requests.exceptions.SSLError):
        return False
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    if isinstance(reason, _NOT_SENT):
        return False
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return True
    text = str(exc).lower()
    return any(sign in text for sign in ("reset by peer", "remote end closed", "broken pipe", "aborted"))


def _read_body(response: requests.Response, url: str, limit: int, deadline: float) -> bytes:
    """The decoded body, at most ``limit`` bytes, arrived by ``deadline``; else a TransportError."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise TransportError(
            f"Content-Length {declared} exceeds the limit of {limit} bytes", url, sent=True, too_large=True
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in _iter_body(response):
            size += len(chunk)
            if size > limit:
                raise TransportError(
                    f"body exceeds the limit of {limit} bytes", url, sent=True, too_large=True
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TransportError("the answer took too long to arrive", url, sent=True)
    except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError) as exc:
        raise TransportError(f"cannot decode the body: {exc}", url, sent=True, undecodable=True) from None
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        raise TransportError(f"reading the answer failed: {exc}", url, sent=True) from None
    return b"".join(chunks)


def _iter_body(response: requests.Response) -> Iterator[bytes]:
    """The decoded body in chunks of whatever each socket read brought.

    ``iter_content`` blocks until a whole chunk has arrived, so a server dripping a few bytes at a
    time could outlast the deadline check; ``read1`` returns after one read.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 before 2.3
        yield from response.iter_content(CHUNK_SIZE)
        return
    while chunk := read1(CHUNK_SIZE, decode_content=True):
        yield chunk
