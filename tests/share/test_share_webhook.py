"""The webhook endpoint against a real local HTTP receiver, verified with `standardwebhooks`.

Requests go through :meth:`Endpoint.send` and :class:`worker.http.HttpClient`, so the status
mapping tested here is the one every network shares: 401/403/404/410 and redirects disable the
endpoint, other 4xx fail only the post, 408/429/5xx and connection errors are transient.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from feeds.http import parse_retry_after
from worker.errors import EndpointDisabled, PermanentShareError, Retryable, TransientShareError
from worker.http import HttpClient
from worker.share import ShareArticle, get_endpoint, idempotency_key
from worker.share.webhook import WebhookEndpoint, encode_body, sign, signing_key

from .conftest import FIXED_NOW, FIXTURES, SECRET, Receiver, webhook_config

GOLDEN_TEMPLATE = "{title}\n\n{summary}\n\n{tags}\n{url}"
KEY = "syn_42_0123456789abcdef_partner-hook"


def endpoint(url: str, secret: str = SECRET, timeout: float = 5.0) -> WebhookEndpoint:
    """A webhook endpoint with the golden template and a fixed payload clock."""
    ep = get_endpoint(
        webhook_config(url, secret, template=GOLDEN_TEMPLATE),
        http=HttpClient(timeout=timeout),
        clock=lambda: FIXED_NOW,
    )
    assert isinstance(ep, WebhookEndpoint)
    return ep


def test_payload_matches_golden_fixture(receiver: Receiver, article: ShareArticle) -> None:
    golden = json.loads((FIXTURES / "webhook_article_published.json").read_text(encoding="utf-8"))
    ep = endpoint(receiver.url)
    preview = ep.render(article)
    assert preview.payload == golden
    assert (preview.endpoint, preview.kind) == ("partner-hook", "webhook")
    assert preview.text == golden["data"]["text"]

    ep.publish(preview, KEY)
    (got,) = receiver.requests
    assert json.loads(got.body) == golden
    # Compact UTF-8 on the wire, not \u escapes: the signature covers these exact bytes.
    assert got.body == json.dumps(golden, ensure_ascii=False, separators=(",", ":")).encode()
    assert "București".encode() in got.body


def test_signed_request_verifies_with_standardwebhooks(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(204)
    ep = endpoint(receiver.url)
    before = int(time.time())
    result = ep.publish(ep.render(article), KEY)

    (got,) = receiver.requests
    assert got.method == "POST" and got.path == "/hooks/syndicate"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("Syndicate")
    assert got.headers["webhook-id"] == KEY
    assert before <= int(got.headers["webhook-timestamp"]) <= int(time.time())
    assert got.headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(got.body, got.headers)["data"]["article_id"] == 42
    assert result.remote_id == KEY and result.remote_url is None


def test_wrong_secret_fails_verification(receiver: Receiver, article: ShareArticle) -> None:
    ep = endpoint(receiver.url)
    ep.publish(ep.render(article), KEY)
    (got,) = receiver.requests
    other = "whsec_" + base64.b64encode(b"a different secret of 24b").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got.body, got.headers)


def test_tampered_body_fails_verification(receiver: Receiver, article: ShareArticle) -> None:
    ep = endpoint(receiver.url)
    ep.publish(ep.render(article), KEY)
    (got,) = receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body.replace(b"42", b"43"), got.headers)


def test_secret_without_prefix_is_used_as_utf8_bytes(receiver: Receiver, article: ShareArticle) -> None:
    raw = "plain-secret-ăîș"
    ep = endpoint(receiver.url, secret=raw)
    ep.publish(ep.render(article), KEY)
    (got,) = receiver.requests
    Webhook(raw.encode("utf-8")).verify(got.body, got.headers)


def test_unpadded_whsec_secret_is_accepted() -> None:
    key = b"sixteen byte key!"  # 17 bytes: base64 needs padding
    encoded = base64.b64encode(key).decode().rstrip("=")
    assert signing_key("whsec_" + encoded) == key


@pytest.mark.parametrize("secret", ["whsec_not*base64!", "whsec_"])
def test_bad_whsec_secret_disables_the_endpoint(
    receiver: Receiver, article: ShareArticle, secret: str
) -> None:
    ep = endpoint(receiver.url, secret=secret)
    with pytest.raises(EndpointDisabled):
        ep.publish(ep.render(article), KEY)
    assert receiver.requests == []


def test_sign_matches_the_reference_library() -> None:
    body = encode_body({"type": "article.published", "data": {"title": "Știri"}})
    ts = int(time.time())
    ours = sign(signing_key(SECRET), "msg_1", ts, body)
    theirs = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(ts, tz=UTC), body.decode())
    assert ours == theirs


def test_redelivery_reuses_the_webhook_id(receiver: Receiver, article: ShareArticle) -> None:
    ep = endpoint(receiver.url)
    key = idempotency_key(article, ep.name)
    ep.publish(ep.render(article), key)
    ep.publish(ep.render(article), key)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == key


@pytest.mark.parametrize(
    ("body", "expected_id", "expected_url"),
    [
        (
            {"id": "evt_981", "url": "https://partner.example/posts/981"},
            "evt_981",
            "https://partner.example/posts/981",
        ),
        ({"id": 981}, "981", None),
        ({"ok": True}, KEY, None),
        ({"id": True}, KEY, None),
        (b"accepted", KEY, None),
        (b"", KEY, None),
    ],
)
def test_2xx_result(
    receiver: Receiver,
    article: ShareArticle,
    body: bytes | dict[str, object],
    expected_id: str,
    expected_url: str | None,
) -> None:
    receiver.respond(201 if isinstance(body, dict) else 200, body)
    ep = endpoint(receiver.url)
    result = ep.publish(ep.render(article), KEY)
    assert (result.remote_id, result.remote_url) == (expected_id, expected_url)


def test_429_with_retry_after_seconds(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(429, b"slow down", {"Retry-After": "120"})
    ep = endpoint(receiver.url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status == 429
    assert info.value.retry_after == 120.0
    assert isinstance(info.value, Retryable)


def test_429_with_retry_after_http_date(receiver: Receiver, article: ShareArticle) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    receiver.respond(429, b"", {"Retry-After": format_datetime(when, usegmt=True)})
    ep = endpoint(receiver.url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.retry_after is not None
    assert 80 <= info.value.retry_after <= 90


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_server_errors_are_transient(receiver: Receiver, article: ShareArticle, status: int) -> None:
    receiver.respond(status, b"<html>upstream unavailable</html>")
    ep = endpoint(receiver.url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status == status
    assert info.value.retry_after is None


def test_503_retry_after_is_honoured(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(503, b"", {"Retry-After": "7"})
    ep = endpoint(receiver.url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 409, 413, 422])
def test_other_client_errors_fail_only_the_post(
    receiver: Receiver, article: ShareArticle, status: int
) -> None:
    receiver.respond(status, {"error": "invalid payload " + "x" * 500})
    ep = endpoint(receiver.url)
    with pytest.raises(PermanentShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status == status
    assert not isinstance(info.value, EndpointDisabled | Retryable)
    message = str(info.value)
    assert f"HTTP {status}" in message and "invalid payload" in message
    assert len(message) < 400


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_auth_and_gone_disable_the_endpoint(receiver: Receiver, article: ShareArticle, status: int) -> None:
    receiver.respond(status, {"error": "invalid signature " + "x" * 500})
    ep = endpoint(receiver.url)
    with pytest.raises(EndpointDisabled) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status == status
    assert not isinstance(info.value, Retryable)
    message = str(info.value)
    assert f"HTTP {status}" in message and "invalid signature" in message
    assert len(message) < 400


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_disables_the_endpoint_and_is_not_followed(
    receiver: Receiver, article: ShareArticle, status: int
) -> None:
    receiver.respond(status, b"", {"Location": "https://elsewhere.example/hook"})
    ep = endpoint(receiver.url)
    with pytest.raises(EndpointDisabled, match=r"elsewhere\.example") as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status == status
    assert len(receiver.requests) == 1


def test_secret_never_appears_in_an_error(receiver: Receiver, article: ShareArticle) -> None:
    # A receiver that echoes what it got (headers included) must not leak the secret via our message.
    receiver.respond(400, {"error": f"bad signature for secret {SECRET}"})
    ep = endpoint(receiver.url)
    with pytest.raises(PermanentShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert SECRET not in json.dumps(ep.render(article).payload)


def test_connection_refused_is_transient(closed_port_url: str, article: ShareArticle) -> None:
    ep = endpoint(closed_port_url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.status is None


def test_connection_refused_was_not_sent(closed_port_url: str, article: ShareArticle) -> None:
    ep = endpoint(closed_port_url)
    with pytest.raises(TransientShareError) as info:
        ep.publish(ep.render(article), KEY)
    assert info.value.sent is False


def test_read_timeout_is_transient_and_may_have_been_sent(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(200, b"", delay=2.0)
    ep = endpoint(receiver.url, timeout=0.3)
    with pytest.raises(TransientShareError, match="no answer within") as info:
        ep.publish(ep.render(article), KEY)
    # The request reached the receiver: only an idempotent endpoint may send it again blindly.
    assert info.value.sent is True
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("key", ["", "has space", "line\nbreak", "ünïcode", "x" * 256])
def test_bad_idempotency_key_is_rejected(receiver: Receiver, article: ShareArticle, key: str) -> None:
    ep = endpoint(receiver.url)
    with pytest.raises(ValueError):
        ep.publish(ep.render(article), key)
    assert receiver.requests == []


def test_given_client_is_used_and_not_closed(receiver: Receiver, article: ShareArticle) -> None:
    session = requests.Session()
    session.headers["X-Trace"] = "t-1"
    client = HttpClient(session=session, user_agent="Syndicate-test/1")
    ep = get_endpoint(webhook_config(receiver.url), http=client)
    ep.publish(ep.render(article), KEY)
    ep.close()
    got = receiver.requests[0].headers
    assert got["x-trace"] == "t-1" and got["user-agent"] == "Syndicate-test/1"
    # The endpoint did not own the client, so closing it left the pooled session usable.
    ep2 = get_endpoint(webhook_config(receiver.url), http=client)
    ep2.publish(ep2.render(article), KEY)
    assert len(receiver.requests) == 2
    session.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("soon", None),
        ("-5", None),
        ("Wed, 01 May 2024 12:01:00 GMT", 60.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=FIXED_NOW) == expected
