"""get_endpoint's registry and the shared Endpoint behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

import worker.share as share
from config.model import ENDPOINT_KINDS, ENDPOINT_MODELS, WebhookEndpointConfig
from worker.errors import PermanentShareError
from worker.share import (
    ENDPOINTS,
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    get_endpoint,
    idempotency_key,
)
from worker.share.file import FileEndpoint
from worker.share.webhook import WebhookEndpoint

from .conftest import file_config, webhook_config


def test_config_kinds_and_endpoint_modules_match() -> None:
    # Every kind the config accepts has its module worker/share/<kind>.py, and no module is orphaned.
    assert set(ENDPOINTS) == set(ENDPOINT_KINDS) == set(ENDPOINT_MODELS)
    for kind, cls in ENDPOINTS.items():
        assert cls.__module__ == f"worker.share.{kind}"
        assert getattr(ENDPOINT_MODELS[kind].model_fields["kind"].annotation, "__args__", None) == (kind,)
    modules = {p.stem for p in Path(share.__file__).parent.glob("*.py")} - {
        "__init__",
        "base",
        "text",
        "images",
        "oauth",  # the OAuth 2 refresh helper that X and LinkedIn share, not a kind
    }
    assert modules == set(ENDPOINTS)


def test_kinds_map_to_their_modules() -> None:
    assert ENDPOINTS["webhook"] is WebhookEndpoint and ENDPOINTS["file"] is FileEndpoint
    assert isinstance(get_endpoint(webhook_config("http://127.0.0.1:1/h")), WebhookEndpoint)
    assert isinstance(get_endpoint(file_config("x.jsonl"), base_dir=Path("/tmp")), FileEndpoint)


def test_unknown_kind_is_a_value_error() -> None:
    config = WebhookEndpointConfig.model_construct(name="masto", kind="myspace", template="{title}")
    with pytest.raises(ValueError, match="unknown kind 'myspace'"):
        get_endpoint(config)


def test_a_class_refuses_a_config_of_another_kind() -> None:
    with pytest.raises(ValueError):
        WebhookEndpoint(file_config("x.jsonl"))  # type: ignore[arg-type]  # the wrong kind on purpose


def test_new_kinds_plug_in_through_the_registry(
    monkeypatch: pytest.MonkeyPatch, article: ShareArticle
) -> None:
    class Tiny(Endpoint):
        kind = "webhook"
        max_chars: ClassVar[int | None] = 100

        def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
            return ShareResult(remote_id=idempotency_key)

    monkeypatch.setitem(share.ENDPOINTS, "webhook", Tiny)
    ep = get_endpoint(webhook_config("http://127.0.0.1:1/h", template="{title} {url}"))
    text = ep.render(article).text
    assert isinstance(ep, Tiny) and len(text) <= 100 and text.endswith(article.url)


def test_render_turns_template_errors_into_permanent_errors(article: ShareArticle) -> None:
    config = WebhookEndpointConfig.model_construct(
        name="hook",
        kind="webhook",
        url="http://127.0.0.1:1/h",
        template="{title.__class__}",
        utm={},
        text="",
        max_hashtags=5,
        image=True,
    )
    with pytest.raises(PermanentShareError, match="hook"):
        get_endpoint(config).render(article)


def test_idempotency_key_is_stable_and_distinct(article: ShareArticle) -> None:
    key = idempotency_key(article, "partner-hook")
    assert key == idempotency_key(article, "partner-hook")
    assert key != idempotency_key(article, "archive")
    moved = ShareArticle(article_id=article.article_id, url=article.url + "?v=2", title=article.title)
    assert key != idempotency_key(moved, "partner-hook")
    assert key.startswith("syn_42_") and key.isascii() and " " not in key


def test_naive_published_time_is_taken_as_utc(article: ShareArticle) -> None:
    from datetime import datetime

    naive = ShareArticle(
        article_id=1, url="https://x.example/a", title="t", published=datetime(2024, 1, 2, 3, 4, 5)
    )
    payload = get_endpoint(file_config("x.jsonl")).render(naive).payload
    assert payload["data"]["published"] == "2024-01-02T03:04:05Z"
