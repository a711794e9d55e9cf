"""Share endpoints: one module per network behind the small :class:`Endpoint` interface.

``get_endpoint(config)`` builds the endpoint for a configured ``kind``; each kind's class is
listed in :data:`ENDPOINTS`.
"""

from __future__ import annotations

from typing import Any

from config.model import EndpointConfig
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    hashtags,
    idempotency_key,
    render_text,
    shorten,
)
from worker.share.file import FileEndpoint
from worker.share.webhook import WebhookEndpoint

ENDPOINTS: dict[str, type[Endpoint]] = {
    WebhookEndpoint.kind: WebhookEndpoint,
    FileEndpoint.kind: FileEndpoint,
}


def get_endpoint(config: EndpointConfig, **kwargs: Any) -> Endpoint:
    """The endpoint for ``config``; ``kwargs`` (session, base_dir, timeout, clock) go to its class.

    Raises ValueError for a kind no module implements.
    """
    try:
        cls = ENDPOINTS[config.kind]
    except KeyError:
        raise ValueError(
            f"endpoint {config.name!r}: unknown kind {config.kind!r}; known: {', '.join(sorted(ENDPOINTS))}"
        ) from None
    return cls(config, **kwargs)


__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "FileEndpoint",
    "Preview",
    "ShareArticle",
    "ShareResult",
    "WebhookEndpoint",
    "get_endpoint",
    "hashtags",
    "idempotency_key",
    "render_text",
    "shorten",
]
