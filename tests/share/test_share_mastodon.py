"""The Mastodon endpoint against a real peer: mastodon-mock 0.6.1 running as a subprocess.

Everything goes over HTTP to the mock's Mastodon REST API; its fault-injection control plane
(``/api/v1/_mock/faults``) forces 503s, truncated JSON, latency and a smaller instance limit
(the mock's own is fixed at 500, so the instance document is served from
``tests/fixtures/share/mastodon/``). A second, rate-limited peer answers 429. Idempotency keys and
article URLs are unique per test, so tests sharing the session's peer do not see each other's posts.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import requests
from PIL import Image as PILImage

from tests.support.httpserver import HTTPTestServer
from worker.errors import EndpointDisabled, PermanentShareError, TransientShareError
from worker.http import HttpClient
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint
from worker.share.mastodon import (
    DEFAULT_MAX_CHARACTERS,
    MastodonEndpoint,
    parse_instance,
    status_language,
)
from worker.share.text import mastodon_length

from .conftest import FIXTURES, endpoint_config

if TYPE_CHECKING:
    from tests.support.mastodon_peer import MastodonPeer

INSTANCE_FIXTURES = FIXTURES / "mastodon"
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the endpoint (instance cache age, idempotency window)."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def unique_article(article: ShareArticle, **changes: Any) -> ShareArticle:
    """``article`` with a URL (and id) no other test uses."""
    tag = uuid.uuid4().hex[:12]
    return replace(article, url=f"{article.url}-{tag}", **changes)


def build(
    peer: MastodonPeer,
    *,
    token: str | None = None,
    timeout: float = 5.0,
    tokens: MemoryTokenStore | None = None,
    clock: Clock | None = None,
    image_host: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> MastodonEndpoint:
    """A Mastodon endpoint on ``peer``; the token comes from ``${MASTODON_TOKEN}``."""
    config = endpoint_config(
        {
            "name": "mastodon-ro",
            "kind": "mastodon",
            "instance": instance or peer.url,
            "access_token": "${MASTODON_TOKEN}",
            **extra,
        },
        {"MASTODON_TOKEN": token or peer.token},
    )
    ep = get_endpoint(
        config,
        http=HttpClient(timeout=timeout),
        media_http=HttpClient(timeout=timeout, allow_hosts=[image_host] if image_host else []),
        tokens=tokens if tokens is not None else MemoryTokenStore(),
        clock=clock or Clock(),
    )
    assert isinstance(ep, MastodonEndpoint)
    return ep


def key() -> str:
    """A fresh idempotency key."""
    return f"syn_42_{uuid.uuid4().hex[:16]}_mastodon-ro"


def instance_doc(name: str) -> dict[str, Any]:
    """An instance document from the fixtures."""
    loaded: dict[str, Any] = json.loads((INSTANCE_FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def png(width: int = 64, height: int = 48) -> bytes:
    """A small PNG."""
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (200, 30, 40)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def image_server() -> Iterator[HTTPTestServer]:
    """A local server with ``/lead.png``."""
    with HTTPTestServer(root=None) as server:
        server.content("/lead.png", png(), "image/png")
        yield server


# ---------------------------------------------------------------- posting and reading back


def test_post_reads_back_with_text_visibility_and_language(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    ep = build(mastodon, visibility="unlisted")
    preview = ep.render(art)
    assert preview.payload == {"status": preview.text, "visibility": "unlisted", "language": "ro"}

    result = ep.publish(preview, key())

    status = mastodon.status(result.remote_id)
    assert result.remote_url == status["url"] == f"{mastodon.url}/@testuser/{result.remote_id}"
    assert mastodon.source_text(result.remote_id) == preview.text
    assert (status["visibility"], status["language"]) == ("unlisted", "ro")
    assert art.url in status["content"] and status["media_attachments"] == []
    assert preview.text.startswith(art.title)


def test_configured_language_wins_over_the_articles(mastodon: MastodonPeer, article: ShareArticle) -> None:
    ep = build(mastodon, language="en")
    result = ep.publish(ep.render(unique_article(article)), key())
    assert mastodon.status(result.remote_id)["language"] == "en"


def test_same_idempotency_key_twice_makes_one_status(mastodon: MastodonPeer, article: ShareArticle) -> None:
    art = unique_article(article)
    ep = build(mastodon)
    preview, k = ep.render(art), key()
    first = ep.publish(preview, k)
    second = build(mastodon).publish(preview, k)

    assert second.remote_id == first.remote_id
    mine = [s for s in mastodon.statuses() if art.url in s["content"]]
    assert [s["id"] for s in mine] == [first.remote_id]
    assert MastodonEndpoint.idempotent


# ---------------------------------------------------------------- instance limits


def test_render_is_offline_and_uses_defaults_until_the_instance_is_known(article: ShareArticle) -> None:
    # Nothing listens on port 9: render must not try.
    config = endpoint_config(
        {"name": "m", "kind": "mastodon", "instance": "http://127.0.0.1:9", "access_token": "${T}"},
        {"T": "secret-token-value"},
    )
    ep = get_endpoint(config)
    assert isinstance(ep, MastodonEndpoint)
    assert ep.text_limit() == DEFAULT_MAX_CHARACTERS
    preview = ep.render(article)
    assert ep.text_length(preview.text) == mastodon_length(preview.text, 23)
    assert "secret-token-value" not in json.dumps(preview.payload)


def test_instance_limits_are_cached_a_day(mastodon: MastodonPeer, article: ShareArticle) -> None:
    tokens, clock = MemoryTokenStore(), Clock()
    small = instance_doc("instance_v2_small_limit.json")
    mastodon.add_fault(
        {"type": "status", "status": 200, "body": small}, path="/api/v2/instance", methods=("GET",)
    )

    ep = build(mastodon, tokens=tokens, clock=clock)
    ep.publish(ep.render(unique_article(article)), key())
    assert mastodon.faults() == []  # the instance document was read
    cached = tokens.load("mastodon-ro")["instance"]
    assert (cached["max_characters"], cached["characters_reserved_per_url"]) == (140, 23)
    assert cached["fetched_at"] == "2024-05-01T12:00:00Z"
    assert build(mastodon, tokens=tokens).text_limit() == 140

    # Within a day nothing is read again; after a day it is.
    mastodon.add_fault(
        {"type": "status", "status": 200, "body": small}, path="/api/v2/instance", methods=("GET",)
    )
    clock.now = START + timedelta(hours=23)
    ep = build(mastodon, tokens=tokens, clock=clock)
    ep.publish(ep.render(unique_article(article)), key())
    assert len(mastodon.faults()) == 1
    clock.now = START + timedelta(hours=25)
    ep = build(mastodon, tokens=tokens, clock=clock)
    ep.publish(ep.render(unique_article(article)), key())
    assert mastodon.faults() == []


def test_publish_renders_again_to_fit_the_instance_limit(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    ep = build(mastodon)
    preview = ep.render(art)  # under the default 500: the full summary
    assert art.summary in preview.text
    mastodon.add_fault(
        {"type": "status", "status": 200, "body": instance_doc("instance_v2_small_limit.json")},
        path="/api/v2/instance",
        methods=("GET",),
    )

    result = ep.publish(preview, key())

    posted = mastodon.source_text(result.remote_id)
    assert posted != preview.text and art.summary not in posted
    assert mastodon_length(posted, 23) <= 140
    assert art.url in posted and posted.startswith(art.title[:20])


def test_max_chars_overrides_the_instance(mastodon: MastodonPeer, article: ShareArticle) -> None:
    art = unique_article(article)
    ep = build(mastodon, max_chars=100)
    result = ep.publish(ep.render(art), key())
    posted = mastodon.source_text(result.remote_id)
    assert ep.text_limit() == 100 and mastodon_length(posted, 23) <= 100 and art.url in posted


def test_text_over_the_servers_limit_is_permanent_with_mastodons_message(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    # max_chars above the real limit: the mock refuses what it cannot hold.
    art = unique_article(article, summary=" ".join(["Indicele BET a crescut."] * 30))
    ep = build(mastodon, max_chars=1000)
    preview = ep.render(art)
    assert len(preview.text) > 500
    with pytest.raises(PermanentShareError) as caught:
        ep.publish(preview, key())
    assert not isinstance(caught.value, EndpointDisabled)
    assert caught.value.status == 422
    assert (
        str(caught.value)
        == "mastodon-ro: HTTP 422: Validation failed: Text is too long (maximum is 500 characters)"
    )


# ---------------------------------------------------------------- errors


def test_bad_token_disables_the_endpoint(mastodon: MastodonPeer, article: ShareArticle) -> None:
    bad = "not-the-token-" + uuid.uuid4().hex
    ep = build(mastodon, token=bad)
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(unique_article(article)), key())
    assert caught.value.status == 401
    assert "requires an authenticated user" in str(caught.value)
    assert bad not in str(caught.value)
    assert ep.tokens.load("mastodon-ro").get("attempts") == {}


def test_token_never_appears_in_error_messages(mastodon: MastodonPeer, article: ShareArticle) -> None:
    # An instance that echoes the Authorization header back in its error bodies.
    echo = {"error": f"bad request from Bearer {mastodon.token}"}
    ep = build(mastodon)
    preview = ep.render(unique_article(article))
    assert mastodon.token not in json.dumps(preview.payload)
    for status in (422, 500, 403):
        mastodon.add_fault({"type": "status", "status": status, "body": echo}, path="/api/v1/statuses")
        with pytest.raises((PermanentShareError, TransientShareError)) as caught:
            ep.publish(preview, key())
        assert mastodon.token not in str(caught.value) and "***" in str(caught.value)


def test_503_is_transient(mastodon: MastodonPeer, article: ShareArticle) -> None:
    mastodon.add_fault({"type": "status", "status": 503}, path="/api/v1/statuses")
    ep = build(mastodon)
    with pytest.raises(TransientShareError) as caught:
        ep.publish(ep.render(unique_article(article)), key())
    assert caught.value.status == 503 and "Service temporarily unavailable" in str(caught.value)


def test_truncated_json_is_transient_and_the_retry_posts_once(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    mastodon.add_fault({"type": "malformed", "truncate": True}, path="/api/v1/statuses")
    ep = build(mastodon)
    preview, k = ep.render(art), key()
    with pytest.raises(TransientShareError) as caught:
        ep.publish(preview, k)
    assert caught.value.sent is True and "unreadable answer" in str(caught.value)

    result = ep.publish(preview, k)
    assert [s["id"] for s in mastodon.statuses() if art.url in s["content"]] == [result.remote_id]


def test_answer_slower_than_our_timeout_is_transient_and_sent(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    mastodon.add_fault({"type": "latency", "delay_ms": 1500}, path="/api/v1/statuses")
    ep = build(mastodon, timeout=0.3)
    preview, k = ep.render(art), key()
    with pytest.raises(TransientShareError) as caught:
        ep.publish(preview, k)
    assert caught.value.sent is True and caught.value.status is None
    assert "no answer within 0.3s" in str(caught.value)

    result = build(mastodon).publish(preview, k)
    assert [s["id"] for s in mastodon.statuses() if art.url in s["content"]] == [result.remote_id]


class AnswerDroppingProxy:
    """Forwards each request to the peer, then hangs up without relaying the answer.

    The status is created but the poster never hears so: a lost answer, which the mock's own faults
    cannot produce (it drops a request whose client has gone).
    """

    def __init__(self, target: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                requests.post(target + self.path, data=body, headers=headers, timeout=5)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AnswerDroppingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_lost_answer_is_transient_and_sent_and_the_retry_posts_once(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    tokens = MemoryTokenStore()
    with AnswerDroppingProxy(mastodon.url) as proxy:
        ep = build(mastodon, instance=proxy.url, tokens=tokens)
        preview, k = ep.render(art), key()
        with pytest.raises(TransientShareError) as caught:
            ep.publish(preview, k)
    assert caught.value.sent is True
    (landed,) = [s for s in mastodon.statuses() if art.url in s["content"]]

    result = build(mastodon, tokens=tokens).publish(preview, k)
    assert (result.remote_id, result.duplicate) == (landed["id"], False)
    assert [s["id"] for s in mastodon.statuses() if art.url in s["content"]] == [landed["id"]]


def test_rate_limit_is_transient_with_retry_after(
    mastodon_limited_peer: MastodonPeer, article: ShareArticle
) -> None:
    ep = build(mastodon_limited_peer)
    # The limit counts per token; the instance document is fetched without one.
    assert mastodon_limited_peer.rate_limit
    for _ in range(mastodon_limited_peer.rate_limit):
        ep.publish(ep.render(unique_article(article)), key())
    with pytest.raises(TransientShareError) as caught:
        ep.publish(ep.render(unique_article(article)), key())
    assert caught.value.status == 429
    # The mock's X-RateLimit-Reset is epoch seconds at the end of its one-hour window.
    assert caught.value.retry_after is not None and 3000 < caught.value.retry_after <= 3600


def test_injected_429_with_retry_after(mastodon: MastodonPeer, article: ShareArticle) -> None:
    mastodon.add_fault({"type": "ratelimit", "headers": {"Retry-After": "42"}}, path="/api/v1/statuses")
    ep = build(mastodon)
    with pytest.raises(TransientShareError) as caught:
        ep.publish(ep.render(unique_article(article)), key())
    assert (caught.value.status, caught.value.retry_after) == (429, 42.0)


# ---------------------------------------------------------------- media


def test_image_is_uploaded_with_alt_text(
    mastodon: MastodonPeer, article: ShareArticle, image_server: HTTPTestServer
) -> None:
    art = unique_article(article, image=image_server.url("/lead.png"))
    ep = build(mastodon, media=True, alt_text="Foto: {title}", image_host=image_server.host_port)
    preview = ep.render(art)
    assert preview.image == art.image and "media_ids" not in preview.payload

    result = ep.publish(preview, key())

    (media,) = mastodon.status(result.remote_id)["media_attachments"]
    assert media["type"] == "image"
    assert media["description"] == f"Foto: {art.title}"
    assert mastodon.source_text(result.remote_id) == preview.text


def test_failed_upload_posts_without_media(
    mastodon: MastodonPeer, article: ShareArticle, image_server: HTTPTestServer
) -> None:
    art = unique_article(article, image=image_server.url("/lead.png"))
    mastodon.add_fault({"type": "status", "status": 500}, path="/api/v2/media")
    ep = build(mastodon, media=True, image_host=image_server.host_port)
    result = ep.publish(ep.render(art), key())
    assert mastodon.faults() == []  # the upload was tried
    assert mastodon.status(result.remote_id)["media_attachments"] == []


def test_image_blocked_by_the_ssrf_guard_posts_without_media(
    mastodon: MastodonPeer, article: ShareArticle, image_server: HTTPTestServer
) -> None:
    art = unique_article(article, image=image_server.url("/lead.png"))
    ep = build(mastodon, media=True)  # 127.0.0.1 not allowed for images
    result = ep.publish(ep.render(art), key())
    assert mastodon.status(result.remote_id)["media_attachments"] == []
    assert image_server.requests == []


def test_without_media_the_image_is_not_uploaded(
    mastodon: MastodonPeer, article: ShareArticle, image_server: HTTPTestServer
) -> None:
    art = unique_article(article, image=image_server.url("/lead.png"))
    ep = build(mastodon, image_host=image_server.host_port)  # media: false, the link card shows it
    result = ep.publish(ep.render(art), key())
    assert mastodon.status(result.remote_id)["media_attachments"] == []
    assert image_server.requests == []


# ---------------------------------------------------------------- lookup and Mastodon's one-hour key memory


def test_lookup_finds_our_status_by_its_link(mastodon: MastodonPeer, article: ShareArticle) -> None:
    art = unique_article(article)
    ep = build(mastodon, utm={"source": "mastodon"})
    preview = ep.render(art)
    result = ep.publish(preview, key())
    assert "utm_source=mastodon" in mastodon.source_text(result.remote_id)

    assert ep.lookup(preview, "any") == result
    assert ep.lookup(ep.render(unique_article(article)), "any") is None


def test_retry_after_the_key_expired_finds_the_earlier_status(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    tokens, clock = MemoryTokenStore(), Clock()
    with AnswerDroppingProxy(mastodon.url) as proxy:
        ep = build(mastodon, instance=proxy.url, tokens=tokens, clock=clock)
        preview, k = ep.render(art), key()
        with pytest.raises(TransientShareError):
            ep.publish(preview, k)
    (landed,) = [s for s in mastodon.statuses() if art.url in s["content"]]
    assert k in tokens.load("mastodon-ro")["attempts"]

    # Two hours later real Mastodon has forgotten the key: the status is found, not posted again.
    clock.now = START + timedelta(hours=2)
    result = build(mastodon, tokens=tokens, clock=clock).publish(preview, k)
    assert (result.remote_id, result.duplicate) == (landed["id"], True)
    assert k not in tokens.load("mastodon-ro")["attempts"]
    assert [s["id"] for s in mastodon.statuses() if art.url in s["content"]] == [landed["id"]]


def test_retry_after_the_key_expired_posts_when_nothing_landed(
    mastodon: MastodonPeer, article: ShareArticle
) -> None:
    art = unique_article(article)
    tokens, clock = MemoryTokenStore(), Clock()
    mastodon.add_fault({"type": "status", "status": 503}, path="/api/v1/statuses")
    ep = build(mastodon, tokens=tokens, clock=clock)
    preview, k = ep.render(art), key()
    with pytest.raises(TransientShareError):
        ep.publish(preview, k)

    clock.now = START + timedelta(hours=2)
    result = build(mastodon, tokens=tokens, clock=clock).publish(preview, k)
    assert not result.duplicate
    assert [s["id"] for s in mastodon.statuses() if art.url in s["content"]] == [result.remote_id]


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("ro", "ro"),
        ("ro-RO", "ro"),
        ("pt-br", "pt-BR"),
        ("zh_TW", "zh-TW"),
        ("EN", "en"),
        ("", None),
        (None, None),
    ],
)
def test_status_language(tag: str | None, expected: str | None) -> None:
    assert status_language(tag) == expected


def test_parse_instance_reads_v2_and_pleroma_v1() -> None:
    v2 = parse_instance(instance_doc("instance_v2_small_limit.json"))
    assert v2 == {
        "max_characters": 140,
        "characters_reserved_per_url": 23,
        "image_size_limit": 4194304,
        "image_types": ["image/jpeg", "image/png", "image/webp"],
    }
    v1 = parse_instance(instance_doc("instance_v1_pleroma.json"))
    assert v1 is not None and (v1["max_characters"], v1["characters_reserved_per_url"]) == (5000, 23)
    assert parse_instance({"configuration": {"statuses": {"max_characters": "500"}}}) is None
    assert parse_instance([]) is None
