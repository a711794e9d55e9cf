"""Share endpoints: one module per network behind the small :class:`Endpoint` interface.

Every module of this package named after an endpoint kind (``mastodon.py`` for
``kind: mastodon``) defines one :class:`Endpoint` subclass; :data:`ENDPOINTS` maps each kind to
it, found by importing those modules, so adding a network is adding a module (and its config
model in :mod:`config.model`). ``get_endpoint(config)`` builds the endpoint for a config.
"""

from __future__ import annotations

import importlib
from typing import Any

from config.model import ENDPOINT_KINDS, EndpointBase
from worker.share.base import (
    Endpoint,
    MemoryTokenStore,
    Preview,
    ShareArticle,
    ShareResult,
    TokenStore,
    hashtags,
    idempotency_key,
    render_text,
    shorten,
)


def _discover() -> dict[str, type[Endpoint]]:
    found: dict[str, type[Endpoint]] = {}
    for kind in sorted(ENDPOINT_KINDS):
        try:
            module = importlib.import_module(f"worker.share.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"worker.share.{kind}":
                raise
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Endpoint)
                and getattr(value, "kind", None) == kind
            ):
                found[kind] = value
    return found


ENDPOINTS: dict[str, type[Endpoint]] = _discover()


def get_endpoint(config: EndpointBase, **kwargs: Any) -> Endpoint:
    """The endpoint for ``config``; ``kwargs`` (http, media_http, tokens, base_dir, clock) go to its class.

    Raises ValueError for a kind no module implements.
    """
    kind = getattr(config, "kind", None)
    try:
        cls = ENDPOINTS[str(kind)]
    except KeyError:
        raise ValueError(
            f"endpoint {config.name!r}: unknown kind {kind!r}; known: {', '.join(sorted(ENDPOINTS))}"
        ) from None
    return cls(config, **kwargs)


__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "MemoryTokenStore",
    "Preview",
    "ShareArticle",
    "ShareResult",
    "TokenStore",
    "get_endpoint",
    "hashtags",
    "idempotency_key",
    "render_text",
    "shorten",
]
