"""Ping WebSub hubs that feeds changed, on the worker's shared HTTP layer.

The protocol (the form, the order of topics, what an answer means) is pure and lives in
:mod:`feeds.websub`; this module only sends it with :class:`~worker.http.HttpClient`, so that a
hub ping gets the same user agent, timeouts, deadline, size cap and status meaning
(:func:`~worker.http.classify`, :func:`~worker.http.retry_delay`) as every other request. The hub
URL is operator configuration, so it is sent without the SSRF guard, like share endpoints' URLs.

:func:`publish_feed` is the pipeline stage the ``syndicate.publish_websub`` task runs after a render
changed a feed: a hub that may recover (429, 5xx, unreachable) raises :class:`HubUnavailable`, a
:class:`~worker.errors.Retryable`, so the task retries it with backoff and the hub's Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import requests

from feeds import websub
from feeds.build import FORMATS
from feeds.websub import WebSubError
from worker.errors import HubUnavailable, TransportError
from worker.http import HttpClient, retry_delay
from worker.runtime import Runtime

__all__ = ["HubUnavailable", "WebSubError", "feed_topics", "publish", "publish_feed"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


def publish(
    hub_url: str,
    topic_urls: Iterable[str],
    *,
    client: HttpClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Ping ``hub_url`` that each of ``topic_urls`` changed; raise :class:`WebSubError` on failure.

    Topics are sent in order, one request each, stopping at the first failure; duplicates are sent
    once. ``client`` is the process's pooled client (a new one, closed afterwards, if None).
    """
    http = client if client is not None else HttpClient(timeout=timeout)
    try:
        websub.publish(topic_urls, lambda topic: _ping(http, hub_url, topic, timeout))
    finally:
        if client is None:
            http.close()


def _wants_body(response: requests.Response) -> bool:
    """Only a refusal's body says anything (the error message); an accepted ping's is skipped."""
    return not 200 <= response.status_code < 300


def _ping(http: HttpClient, hub_url: str, topic: str, timeout: float) -> None:
    try:
        answer = http.post(hub_url, data=websub.publish_form(topic), timeout=timeout, before_body=_wants_body)
    except TransportError as exc:
        # Not a URL at all will not get better; a refused or timed-out hub may, and a resent
        # ping is harmless (publishing is idempotent), so "maybe sent" does not matter here.
        raise websub.unreachable_error(hub_url, topic, str(exc), retryable=not exc.blocked) from None
    retryable = answer.outcome.retryable
    error = websub.answer_error(
        hub_url,
        topic,
        answer.status,
        answer.body,
        retryable=retryable,
        retry_after=retry_delay(answer.headers, status=answer.status) if retryable else None,
    )
    if error is not None:
        raise error


def feed_topics(base_url: str, feed_name: str) -> list[str]:
    """The topic (self) URL of every format of a feed, as its ``Link: rel="self"`` header names it."""
    return [f"{base_url}/feeds/{feed_name}.{fmt}" for fmt in FORMATS]


def publish_feed(rt: Runtime, feed_name: str) -> bool:
    """Ping the configured hub that ``feed_name`` changed; ``False`` if no hub is configured.

    A hub that refuses for good (4xx) is logged and not retried: a later change pings it again.
    """
    hub = rt.config.websub.hub
    if not hub:
        return False
    try:
        publish(hub, feed_topics(rt.settings.base_url, feed_name), client=rt.share_http)
    except WebSubError as exc:
        if exc.retryable:
            raise HubUnavailable(exc) from None
        log.warning("WebSub: %s", exc)
        return False
    return True
