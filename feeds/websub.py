"""Tell a WebSub hub that feeds changed (the de-facto ``hub.mode=publish`` ping).

One POST is sent per topic, each carrying both ``hub.topic`` and ``hub.url``: hubs disagree on
the parameter name (Flask-WebSub reads only ``hub.topic``, older PubSubHubbub hubs ``hub.url``),
and hubs that read a single form value would ignore every topic after the first.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from feeds.http import parse_retry_after

MAX_ERROR_BODY = 2000


class WebSubError(Exception):
    """A publish ping failed.

    ``status`` is the hub's HTTP status (``None`` when no response arrived), ``body`` the start
    of its response, ``retryable`` whether trying again later may succeed (429, 5xx, network
    errors) and ``retry_after`` the hub's ``Retry-After`` in seconds, if it sent one.
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


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _publish_one(session: requests.Session, hub_url: str, topic: str, timeout: float) -> None:
    form = [("hub.mode", "publish"), ("hub.topic", topic), ("hub.url", topic)]
    try:
        # A redirect would turn the POST into a GET and lose the form, so it counts as a failure.
        response = session.post(hub_url, data=form, timeout=timeout, allow_redirects=False)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise WebSubError(
            f"WebSub hub {hub_url} unreachable: {exc}", hub_url=hub_url, topic_url=topic, retryable=True
        ) from exc
    except requests.RequestException as exc:
        raise WebSubError(
            f"WebSub publish to {hub_url} failed: {exc}", hub_url=hub_url, topic_url=topic
        ) from exc
    if 200 <= response.status_code < 300:
        return
    body = response.text[:MAX_ERROR_BODY]
    retryable = _is_retryable_status(response.status_code)
    raise WebSubError(
        f"WebSub hub {hub_url} answered {response.status_code} for {topic}: {body.strip()[:200]}",
        hub_url=hub_url,
        topic_url=topic,
        status=response.status_code,
        body=body,
        retryable=retryable,
        retry_after=parse_retry_after(response.headers.get("Retry-After")) if retryable else None,
    )


def publish(
    hub_url: str,
    topic_urls: Sequence[str],
    session: requests.Session | None = None,
    timeout: float = 10,
) -> None:
    """Ping ``hub_url`` that each of ``topic_urls`` changed; raise :class:`WebSubError` on failure.

    Topics are sent in order, one request each, stopping at the first failure (publishing is
    idempotent, so a retry may safely resend the ones that succeeded). Duplicates are sent once.
    """
    topics = list(dict.fromkeys(t for t in topic_urls if t))
    if not topics:
        return
    own_session = session is None
    http = session if session is not None else requests.Session()
    try:
        for topic in topics:
            _publish_one(http, hub_url, topic, timeout)
    finally:
        if own_session:
            http.close()
