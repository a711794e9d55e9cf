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
    │   │   ├── EndpointDisabled      the endpoint itself is broken (401/403, webhook gone, LinkedIn
    │   │   │   │                     426): the share fails and the endpoint is disabled until an
    │   │   │   │                     operator re-enables it
    │   │   │   ├── GraphTokenError   Facebook/Threads token expired or revoked: a refresh may cure it
    │   │   │   └── TokenRejected     Bluesky refused the session token: refresh or log in again
    │   │   ├── DuplicatePost         X, Facebook, LinkedIn: the same post is already there (sent)
    │   │   ├── ChatMigrated          Telegram: the group moved to a new chat id (sent again there)
    │   │   ├── PhotoRefused          Telegram: the picture was refused (sent again as text)
    │   │   ├── RecordExists          Bluesky: the record key is taken (an earlier attempt posted it)
    │   │   └── RecordNotFound        Bluesky: no record under the key (not posted yet)
    │   ├── UncertainShare            the request may have reached the remote and the network gives
    │   │                             no way to find out: an operator decides, never a blind resend
    │   └── TransientShareError  *    429/5xx, connection errors before the request was sent
    ├── FeedExportError          *    the feed export directory cannot be written (read-only, full):
    │                                 the render is not done until the export is (shown in status)
    ├── IngestError                   a pushed article is invalid
    ├── MatchInputError               an article given to the story matcher cannot be read
    ├── StoryChangeError              an operator's story merge or split that cannot be done
    ├── TransportError                no usable HTTP answer (refused, timeout, reset, too large):
    │                                 worker.http's callers map it to a fetch or share error
    │   the command line's own (worker/cli):
    ├── Unreachable                   Redis or the database does not answer (a command exits 4)
    ├── PortInUse                     a server's port is held by another program (up, web, monitor)
    └── MonitorRefused                Flower would listen off loopback without a password

    HubUnavailable (Retryable)   *    a WebSub hub refused a ping for now or could not be reached

Not failures: signals between a stage and the task machinery, on purpose outside SyndicateError so
that no ``except SyndicateError`` can swallow them::

    Deferred                          a share may not be sent yet: try again in ``seconds``
    Rescheduled                       a run handed its work to a copy sent with a countdown
    GaveUp                            the work failed for good (reason stored): Celery FAILURE
    AlreadyPublished                  Threads: the stored container was published by an attempt
                                      whose answer was lost (the share is a duplicate, sent)

The lower layers have their own roots, since ``config`` and ``feeds`` import nothing from
``worker`` (dependencies point config <- feeds <- worker)::

    config.model.ConfigError          the YAML config is invalid: every problem with its key path
    config.settings.SettingsError     an environment setting is invalid
    feeds.websub.WebSubError          a WebSub hub ping failed (``retry_after`` when worth retrying)

Not a class: a full disk (SQLite/PostgreSQL "disk full", ``OSError`` ENOSPC/EDQUOT anywhere in the
chain) is recognised by :func:`worker.storage.is_storage_full`: the API answers 503 + Retry-After,
a task is sent again later without using a retry, and health, status and metrics show it.

Errors marked ``*`` also derive from :class:`Retryable`; Celery tasks retry those (honouring
``retry_after`` when the remote said how long to wait) and record every other error as final.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feeds.websub import WebSubError


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


class GraphTokenError(EndpointDisabled):
    """Facebook/Threads: the token is expired, revoked or invalid (codes 102/190): a refresh may cure it."""


class TokenRejected(EndpointDisabled):
    """Bluesky: the PDS refused the token (``ExpiredToken``/``InvalidToken``): refresh or log in again."""


class DuplicatePost(PermanentShareError):
    """The network refused the post as a duplicate of one already there (X, Facebook, LinkedIn).

    ``urn`` is the existing post's id when the network names it (LinkedIn), else empty.
    """

    def __init__(self, message: str, status: int | None = None, urn: str = "") -> None:
        super().__init__(message, status)
        self.urn = urn


class ChatMigrated(PermanentShareError):
    """Telegram: the group became a supergroup with a new id (``parameters.migrate_to_chat_id``)."""

    def __init__(self, message: str, chat_id: int) -> None:
        super().__init__(message, status=400)
        self.chat_id = chat_id


class PhotoRefused(PermanentShareError):
    """Telegram could not use the picture of a ``sendPhoto``."""


class RecordExists(PermanentShareError):
    """Bluesky: ``putRecord`` with ``swapRecord: null`` found the record already there (``InvalidSwap``)."""


class RecordNotFound(PermanentShareError):
    """Bluesky: ``getRecord`` found no record under the key."""


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


class TransportError(SyndicateError):
    """No usable answer arrived: connection refused, timeout, reset, body too large or too slow.

    ``sent`` is true when the request may have reached the server (it timed out or broke while
    waiting for the answer), so a non-idempotent request must not be blindly repeated.
    ``too_large`` marks a body over the size cap, ``blocked`` a URL refused by the SSRF guard (or
    one that is not a URL at all) and ``undecodable`` a body whose Content-Encoding is broken: none
    of these three gets better by retrying.
    """

    def __init__(
        self,
        message: str,
        url: str,
        *,
        sent: bool = False,
        too_large: bool = False,
        blocked: bool = False,
        undecodable: bool = False,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.sent = sent
        self.too_large = too_large
        self.blocked = blocked
        self.undecodable = undecodable


class HubUnavailable(Retryable):
    """The hub refused a ping for now (429, 5xx) or could not be reached: try again later."""

    def __init__(self, error: WebSubError) -> None:
        super().__init__(str(error))
        self.retry_after = error.retry_after
        self.status = error.status


# ---- not failures: signals between a stage and the task machinery


class Deferred(Exception):
    """The share may not be sent yet; try again in ``seconds`` (not a failure, not a retry)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"deferred {seconds:.1f}s: {reason}")
        self.seconds = max(0.0, seconds)
        self.reason = reason


class Rescheduled(Exception):
    """This run handed its work to a copy of the task sent with a countdown (see ``run_stage``)."""


class GaveUp(Exception):
    """The task's work failed for good (its reason is recorded in the database): Celery FAILURE.

    Listed in :attr:`worker.tasks.PipelineTask.throws`, so Celery logs it as an expected failure, one line
    without a traceback (the reason was logged at ERROR just before).
    """


class AlreadyPublished(Exception):
    """Threads: the stored container was published by an attempt whose answer was lost."""


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
