"""WebSub publish pings (the de-facto ``hub.mode=publish``): what to send a hub and what its answer means.

Pure, like the rest of :mod:`feeds`: no request is made here. :func:`worker.websub.publish` sends
the pings on the worker's one HTTP client (:class:`worker.http.HttpClient`, which owns timeouts,
size caps and the meaning of a status) and hands each answer to :func:`answer_error`.

One POST is sent per topic, each carrying both ``hub.topic`` and ``hub.url``: hubs disagree on
the parameter name (Flask-WebSub reads only ``hub.topic``, older PubSubHubbub hubs ``hub.url``),
and hubs that read a single form value would ignore every topic after the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

MAX_ERROR_BODY = 2000


class WebSubError(Exception):
    """A publish ping failed.

    ``status`` is the hub's HTTP status (``None`` when no response arrived), ``body`` the start
    of its response, ``retryable`` whether trying again later may succeed (429, 5xx, network
    errors) and ``retry_after`` the seconds the hub asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        hub_url: str,
        topic_url: str | None = None,
        status: int | None = None,
        body: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.hub_url = hub_url
        self.topic_url = topic_url
        self.status = status
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


def publish_topics(topic_urls: Iterable[str]) -> list[str]:
    """The topics to ping, in order, each once; empty URLs are dropped."""
    return list(dict.fromkeys(t for t in topic_urls if t))


def publish_form(topic_url: str) -> list[tuple[str, str]]:
    """The form body (``application/x-www-form-urlencoded``) that tells a hub ``topic_url`` changed."""
    return [("hub.mode", "publish"), ("hub.topic", topic_url), ("hub.url", topic_url)]


def answer_error(
    hub_url: str,
    topic_url: str,
    status: int,
    body: bytes,
    *,
    retryable: bool,
    retry_after: float | None = None,
) -> WebSubError | None:
    """None when the hub accepted the ping (any 2xx), else the :class:`WebSubError` to raise.

    A redirect is a failure too: following it would turn the POST into a GET and lose the form.
    ``retryable`` and ``retry_after`` are what the status and the rate-limit headers mean, as the
    HTTP layer reads them (:func:`worker.http.classify`, :func:`worker.http.retry_delay`).
    """
    if 200 <= status < 300:
        return None
    text = body.decode("utf-8", errors="replace")[:MAX_ERROR_BODY]
    return WebSubError(
        f"WebSub hub {hub_url} answered {status} for {topic_url}: {text.strip()[:200]}",
        hub_url=hub_url,
        topic_url=topic_url,
        status=status,
        body=text,
        retryable=retryable,
        retry_after=retry_after if retryable else None,
    )


def unreachable_error(hub_url: str, topic_url: str, reason: str, *, retryable: bool) -> WebSubError:
    """The :class:`WebSubError` for a ping that got no answer (refused, timed out, not a URL)."""
    what = "unreachable" if retryable else "cannot be pinged"
    return WebSubError(
        f"WebSub hub {hub_url} {what}: {reason}", hub_url=hub_url, topic_url=topic_url, retryable=retryable
    )


def publish(topic_urls: Iterable[str], ping: Callable[[str], None]) -> None:
    """Call ``ping(topic)`` for each of :func:`publish_topics`, stopping at the first failure.

    ``ping`` sends one publish request and raises :class:`WebSubError` when it fails (see
    :func:`worker.websub.publish`). Publishing is idempotent, so a retry may safely resend the
    topics that succeeded before the failure.
    """
    for topic in publish_topics(topic_urls):
        ping(topic)
