"""Ping WebSub hubs that feeds changed, on the worker's shared HTTP layer.

The protocol (the form, the order of topics, what an answer means) is pure and lives in
:mod:`feeds.websub`; this module only sends it with :class:`~worker.http.HttpClient`, so that a
hub ping gets the same user agent, timeouts, deadline, size cap and status meaning
(:func:`~worker.http.classify`, :func:`~worker.http.retry_delay`) as every other request. The hub
URL is operator configuration, so it is sent without the SSRF guard, like share endpoints' URLs.
"""

from __future__ import annotations

from collections.abc import Iterable

import requests

from feeds import websub
from feeds.websub import WebSubError
from worker.http import HttpClient, TransportError, retry_delay

__all__ = ["WebSubError", "publish"]

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
