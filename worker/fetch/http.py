"""Polite, bounded and SSRF-guarded HTTP fetching of partner pages.

:class:`Fetcher` wraps a :class:`requests.Session` and enforces the :class:`~config.model.FetchPolicy`:
it sends Syndicate's user agent, checks every URL (the first one and every redirect hop) with
:func:`check_url`, follows redirects itself, streams the body and stops past ``max_bytes``, refuses
content that is not a document (images, PDFs, video...) and turns every failure into one of the
:mod:`worker.errors` fetch errors, so that callers only ever see :class:`~worker.errors.FetchError`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from config.model import FetchPolicy
from feeds.http import parse_retry_after
from worker.errors import (
    BlockedURL,
    FetchError,
    HTTPStatusError,
    TooLarge,
    TransientFetchError,
    UnsupportedContent,
)

__all__ = ["DEFAULT_ACCEPT", "FetchResult", "Fetcher", "check_url"]

log = logging.getLogger(__name__)

DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHUNK_SIZE = 64 * 1024
# A per-read timeout does not bound a server that drips one byte just inside it, so the whole
# fetch (all hops and the body) also has a deadline of this many times ``policy.timeout``.
TOTAL_TIMEOUT_FACTOR = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TRANSIENT_STATUSES = frozenset({408, 425, 429})

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
# A host written as a number in a form other than a canonical dotted quad (2130706433, 0177.0.0.1,
# 0x7f.1, 127.1): resolvers disagree about these, so they are refused outright.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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


def check_url(url: str, allow_hosts: Collection[str] = ()) -> None:
    """Refuse (raise :class:`BlockedURL`) a URL Syndicate must not fetch.

    Only http and https URLs without credentials are allowed, and only when every address the
    host resolves to is public: private, loopback, link-local, multicast, reserved and
    unspecified addresses are blocked, also when wrapped in IPv4-mapped, 6to4, Teredo or NAT64
    IPv6 forms. Hosts (``host`` or ``host:port``) listed in ``allow_hosts`` skip the address check.
    A host that does not resolve raises :class:`TransientFetchError`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedURL(f"malformed URL: {exc}", url) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURL(f"scheme {scheme or '(none)'!r} is not allowed, only http and https", url)
    if parts.username is not None or parts.password is not None:
        raise BlockedURL("URLs with credentials are not allowed", url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedURL("URL has no host", url)
    if port is None:
        port = 443 if scheme == "https" else 80
    if _is_allowed(host, port, allow_hosts):
        return
    if _NUMERIC_HOST.match(host) and not _is_canonical_ipv4(host):
        raise BlockedURL(f"host {host!r} is a non-canonical numeric address", url)
    for address in _resolve(host, port, url):
        reason = _blocked_reason(address)
        if reason:
            raise BlockedURL(f"host {host!r} resolves to {reason} address {address}", url)


def _is_allowed(host: str, port: int, allow_hosts: Collection[str]) -> bool:
    wanted = {host, f"{host}:{port}"}
    if ":" in host:  # IPv6 literals may be listed with or without brackets
        wanted |= {f"[{host}]", f"[{host}]:{port}"}
    return any(entry.strip().rstrip(".").lower() in wanted for entry in allow_hosts)


def _is_canonical_ipv4(host: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False


def _resolve(host: str, port: int, url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (a seam tests replace to fake public DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientFetchError(f"cannot resolve host {host!r}: {exc}", url) from None
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        try:
            addresses.append(ipaddress.ip_address(raw))
        except ValueError:
            raise BlockedURL(f"host {host!r} resolves to unparseable address {raw!r}", url) from None
    if not addresses:
        raise TransientFetchError(f"host {host!r} has no address", url)
    return addresses


def _blocked_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be contacted, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            reason = _blocked_reason(inner)
            if reason:
                return f"{reason} (embedded {inner})"
        if embedded:
            # A wrapper is as safe as what it wraps; Python < 3.11.10 also calls all of 2002::/16 private.
            return None
    checks = (
        ("a loopback", address.is_loopback),
        ("an unspecified", address.is_unspecified),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        # Shared (CGNAT), documentation and other special ranges are not global either.
        ("a non-global", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


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


class Fetcher:
    """Fetches URLs under a :class:`FetchPolicy`; reuse one per worker for connection pooling.

    A session passed in is used as is (and not closed by :meth:`close`); the Fetcher's own session
    ignores proxy and ``.netrc`` settings from the environment, so that partner requests never
    carry local credentials and always go where :func:`check_url` looked.
    """

    def __init__(self, policy: FetchPolicy, session: requests.Session | None = None) -> None:
        """Use ``policy`` for every request, on ``session`` or a new session of its own."""
        self.policy = policy
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            session.trust_env = False
        self.session = session

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections (only of a session this Fetcher created)."""
        if self._owns_session:
            self.session.close()

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = DEFAULT_ACCEPT,
    ) -> FetchResult:
        """GET ``url``, following up to ``policy.max_redirects`` redirects, each one checked.

        With ``etag`` / ``last_modified`` the request is conditional and a 304 answer comes back
        as a result whose :attr:`~FetchResult.not_modified` is true. Raises :class:`BlockedURL`,
        :class:`TooLarge`, :class:`UnsupportedContent`, :class:`HTTPStatusError` (permanent 4xx),
        :class:`TransientFetchError` (timeouts, connection errors, 408/429/5xx) or
        :class:`FetchError` (anything else, such as a redirect loop or a broken encoding).
        """
        policy = self.policy
        headers = {"User-Agent": policy.user_agent, "Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + policy.timeout * TOTAL_TIMEOUT_FACTOR
        current = url
        for _hop in range(policy.max_redirects + 1):
            if time.monotonic() > deadline:
                raise TransientFetchError("redirects took too long", current)
            # Check-then-connect: the address is resolved again when connecting, so a DNS
            # rebinding attacker could still switch to a private address in between. Pinning the
            # checked IP in a custom adapter would close that gap; this is acceptable for now.
            check_url(current, policy.allow_hosts)
            response = self._send(current, headers)
            try:
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise HTTPStatusError(f"redirect {status} without Location", current, status)
                    log.debug("redirect %s %s -> %s", status, current, location)
                    current = urljoin(current, location.strip())
                    continue
                return self._finish(url, current, response, deadline, etag, last_modified)
            finally:
                response.close()
        raise HTTPStatusError(f"more than {policy.max_redirects} redirects", current)

    def _send(self, url: str, headers: Mapping[str, str]) -> requests.Response:
        timeout = self.policy.timeout
        try:
            return self.session.get(
                url, headers=dict(headers), allow_redirects=False, stream=True, timeout=(timeout, timeout)
            )
        except requests.Timeout as exc:
            raise TransientFetchError(f"timed out: {exc}", url) from None
        except requests.ConnectionError as exc:
            raise TransientFetchError(f"connection failed: {exc}", url) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
            raise BlockedURL(f"invalid URL: {exc}", url) from None
        except requests.RequestException as exc:
            raise FetchError(f"request failed: {exc}", url) from None

    def _finish(
        self,
        url: str,
        final_url: str,
        response: requests.Response,
        deadline: float,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResult:
        status = response.status_code
        headers = MappingProxyType(CaseInsensitiveDict(response.headers))
        if status == 304 and (etag or last_modified):
            return FetchResult(
                url=url,
                final_url=final_url,
                status=304,
                headers=headers,
                body=b"",
                content_type=headers.get("Content-Type", "").strip() or None,
                etag=headers.get("ETag") or etag,
                last_modified=headers.get("Last-Modified") or last_modified,
            )
        if status in TRANSIENT_STATUSES or 500 <= status <= 599:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            raise TransientFetchError(f"HTTP {status}", final_url, status=status, retry_after=retry_after)
        if status not in (200, 203):
            raise HTTPStatusError(f"HTTP {status}", final_url, status)
        media_type = _media_type(headers.get("Content-Type"))
        if media_type not in _SNIFFED_TYPES and not _is_document_type(media_type):
            raise UnsupportedContent(f"unsupported content type {media_type!r}", final_url)
        body = self._read_body(final_url, response, deadline)
        if media_type in _SNIFFED_TYPES and not _sniff_document(body):
            shown = media_type or "(none)"
            raise UnsupportedContent(f"content of type {shown!r} is not a document", final_url)
        return FetchResult(
            url=url,
            final_url=final_url,
            status=status,
            headers=headers,
            body=body,
            content_type=headers.get("Content-Type", "").strip() or None,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
        )

    def _read_body(self, url: str, response: requests.Response, deadline: float) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"Content-Length {declared} exceeds the limit of {limit} bytes", url)
        chunks: list[bytes] = []
        size = 0
        try:
            # Chunks are decoded bytes, so a gzip bomb is counted at its inflated size.
            for chunk in _iter_body(response):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"body exceeds the limit of {limit} bytes", url)
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TransientFetchError("body took too long to arrive", url)
        except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError) as exc:
            raise FetchError(f"cannot decode the body: {exc}", url) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,
            OSError,
        ) as exc:
            raise TransientFetchError(f"reading the body failed: {exc}", url) from None
        return b"".join(chunks)


def _iter_body(response: requests.Response) -> Iterator[bytes]:
    """The decoded body in chunks of whatever each socket read brought.

    ``iter_content`` would block until a whole chunk has arrived, so a server dripping a few bytes
    at a time could outlast the deadline check; ``read1`` returns after one read.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 before 2.3
        yield from response.iter_content(CHUNK_SIZE)
        return
    while chunk := read1(CHUNK_SIZE, decode_content=True):
        yield chunk
