"""The one error tree of Syndicate's pipeline.

::

    SyndicateError
    ├── FetchError                    fetching a page failed
    │   ├── BlockedURL                SSRF guard: private/loopback/reserved address, bad scheme
    │   ├── TooLarge                  body larger than fetch.max_bytes
    │   ├── UnsupportedContent        not HTML/XML/feed (an image, a PDF, ...)
    │   ├── Disallowed                robots.txt forbids the URL: never fetched, shown as skipped
    │   ├── HostBusy             *    the host's politeness budget is spent: reschedule, not a failure
    │   ├── HTTPStatusError           4xx other than 408/429: permanent
    │   └── TransientFetchError  *    timeouts, connection errors, 408/429/5xx
    ├── NormalizeError                the page holds no article we can extract
    ├── ShareError                    publishing to an endpoint failed
    │   ├── PermanentShareError       this post was refused (400/422, text rejected): the share fails
    │   │   └── EndpointDisabled      the endpoint itself is broken (401/403, webhook gone, LinkedIn
    │   │                             426): the share fails and the endpoint is disabled until an
    │   │                             operator re-enables it
    │   ├── UncertainShare            the request may have reached the remote and the network gives
    │   │                             no way to find out: an operator decides, never a blind resend
    │   └── TransientShareError  *    429/5xx, connection errors before the request was sent
    ├── FeedExportError          *    the feed export directory cannot be written (read-only, full):
    │                                 the render is not done until the export is (shown in status)
    ├── IngestError                   a pushed article is invalid
    ├── MatchInputError               an article given to the story matcher cannot be read
    ├── StoryChangeError              an operator's story merge or split that cannot be done
    │   the command line's own (worker/cli):
    ├── Unreachable                   Redis or the database does not answer (a command exits 4)
    ├── PortInUse                     a server's port is held by another program (up, web, monitor)
    └── MonitorRefused                Flower would listen off loopback without a password

Not a class: a full disk (SQLite/PostgreSQL "disk full", ``OSError`` ENOSPC/EDQUOT anywhere in the
chain) is recognised by :func:`worker.storage.is_storage_full`: the API answers 503 + Retry-After,
a task is sent again later without using a retry, and health, status and metrics show it.

Errors marked ``*`` also derive from :class:`Retryable`; Celery tasks retry those (honouring
``retry_after`` when the remote said how long to wait) and record every other error as final.
"""

from __future__ import annotations


class SyndicateError(Exception):
    """Base of every error Syndicate raises on purpose."""


class Retryable(Exception):
    """Marker: the operation may succeed later. ``retry_after`` is seconds, if the remote said."""

    retry_after: float | None = None


class FetchError(SyndicateError):
    """Fetching a URL failed."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class BlockedURL(FetchError):
    """The URL points at an address or scheme Syndicate refuses to fetch (SSRF guard)."""


class TooLarge(FetchError):
    """The response body is larger than the configured ``fetch.max_bytes``."""


class UnsupportedContent(FetchError):
    """The response is not something Syndicate can read (not HTML, XML or a feed)."""


class Disallowed(FetchError):
    """robots.txt disallows this URL for our user agent: it is never fetched."""


class HostBusy(FetchError, Retryable):
    """The host's politeness budget (per-host rate limit, ``Crawl-delay``) is spent for now.

    Not a failure: the task is rescheduled after ``retry_after`` seconds without using a retry.
    """

    def __init__(self, message: str, url: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, url)
        self.retry_after = retry_after


class HTTPStatusError(FetchError):
    """The server answered with a status that will not change by retrying (404, 410, 403...)."""

    def __init__(self, message: str, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message, url)
        self.status = status


class TransientFetchError(FetchError, Retryable):
    """A timeout, a connection error or a 408/429/5xx answer: worth retrying."""

    def __init__(
        self,
        message: str,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url)
        self.status = status
        self.retry_after = retry_after


class NormalizeError(SyndicateError):
    """The document holds no article that can be extracted (empty, not HTML, no text)."""


class ShareError(SyndicateError):
    """Publishing to a share endpoint failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PermanentShareError(ShareError):
    """The endpoint refused the post in a way retrying will not fix."""


class EndpointDisabled(PermanentShareError):
    """The endpoint cannot take any post until an operator fixes its config or credentials."""


class UncertainShare(ShareError):
    """The remote may have published the post, and nothing tells us whether it did."""


class TransientShareError(ShareError, Retryable):
    """The endpoint is busy or down (429/5xx/timeout): retry later."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None, sent: bool = False
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
        # True when the request may have reached the remote (it timed out waiting for the answer).
        self.sent = sent


class FeedExportError(SyndicateError, Retryable):
    """Writing a feed's files to the export directory failed: the render retries until it succeeds."""

    def __init__(self, message: str, feed_name: str | None = None) -> None:
        super().__init__(message)
        self.feed_name = feed_name


class IngestError(SyndicateError):
    """A pushed article failed validation."""


class MatchInputError(SyndicateError, ValueError):
    """An article given to the story matcher is not an object, has no text, or has a bad date."""


class StoryChangeError(SyndicateError, ValueError):
    """A story merge or split refused: a story merged with itself, the only version split out."""


# ---- the command line's own errors (worker/cli): each said in one line, with an exit code ----


class Unreachable(SyndicateError):
    """Redis or the database does not answer: said in one line, without a traceback."""


class PortInUse(SyndicateError):
    """A server's port is held by another program; the message names the setting that moves it."""

    def __init__(self, what: str, host: str, port: int, setting: str) -> None:
        self.port = port
        self.setting = setting
        super().__init__(
            f"port {port} on {host or 'every address'} is already in use by another program, so {what} "
            f"cannot listen there: stop that program or set {setting} to a free port"
        )


class MonitorRefused(SyndicateError):
    """Flower would listen on a non-loopback address with no authentication."""
