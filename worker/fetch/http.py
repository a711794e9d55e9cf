"""Polite, bounded and SSRF-guarded HTTP fetching of partner pages.

:class:`Fetcher` sends every request through one :class:`~worker.http.HttpClient` built from the
:class:`~config.model.FetchPolicy`, which owns the user agent, the timeout, one deadline over the
whole exchange, the streamed size cap (decoded bytes) and the SSRF guard (:mod:`worker.ssrf`).
What is the Fetcher's own: it follows redirects itself, so that every hop passes the guard and the
deadline covers the whole chain; it sends conditional GETs; it refuses content that is not a
document (images, PDFs, video...) before the body is read; and it turns every failure and every
status (as :func:`worker.http.classify` reads it) into one of the :mod:`worker.errors` fetch
errors, so that callers only ever see :class:`~worker.errors.FetchError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urljoin

import requests

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
from worker.http import DEADLINE_FACTOR, Answer, HttpClient, Outcome, TransportError, retry_delay
from worker.ssrf import check_url

__all__ = ["DEFAULT_ACCEPT", "FetchResult", "Fetcher", "check_url", "parse_retry_after"]

log = logging.getLogger(__name__)

DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The whole fetch (all hops and the body) has a deadline of this many times ``policy.timeout``.
TOTAL_TIMEOUT_FACTOR = DEADLINE_FACTOR
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only these carry the document asked for; 201, 204 or 206 would be a server misunderstanding us.
DOCUMENT_STATUSES = frozenset({200, 203})

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

    A session passed in is used as is (and not closed by :meth:`close`); the Fetcher's own session
    ignores proxy and ``.netrc`` settings from the environment, so that partner requests never
    carry local credentials and always go where :func:`check_url` looked.
    """

    def __init__(self, policy: FetchPolicy, session: requests.Session | None = None) -> None:
        """Use ``policy`` for every request, on ``session`` or a new session of its own."""
        self.policy = policy
        self.http = HttpClient(
            user_agent=policy.user_agent,
            timeout=policy.timeout,
            max_bytes=policy.max_bytes,
            allow_hosts=policy.allow_hosts,
            session=session,
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
        :class:`TransientFetchError` (timeouts, connection errors, 408/425/429/5xx) or
        :class:`FetchError` (anything else, such as a redirect loop or a broken encoding).
        """
        policy = self.policy
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + policy.timeout * TOTAL_TIMEOUT_FACTOR
        current = url
        for _hop in range(policy.max_redirects + 1):
            if time.monotonic() > deadline:
                raise TransientFetchError("redirects took too long", current)
            try:
                # Check-then-connect: the address is resolved again when connecting, so a DNS
                # rebinding attacker could still switch to a private address in between. Pinning
                # the checked IP in a custom adapter would close that gap; acceptable for now.
                answer = self.http.get(
                    current, headers=headers, guard=True, before_body=_wants_body, deadline=deadline
                )
            except TransportError as exc:
                raise _fetch_error(exc) from None
            status = answer.status
            if status in REDIRECT_STATUSES:
                location = answer.headers.get("Location")
                if not location:
                    raise HTTPStatusError(f"redirect {status} without Location", current, status)
                log.debug("redirect %s %s -> %s", status, current, location)
                current = urljoin(current, location.strip())
                continue
            return self._finish(url, answer, etag, last_modified)
        raise HTTPStatusError(f"more than {policy.max_redirects} redirects", current)

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
