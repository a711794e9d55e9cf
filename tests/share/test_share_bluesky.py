"""The Bluesky endpoint against the reference PDS (``@atproto/pds``) running on 127.0.0.1.

The peer (a PDS plus a did:plc directory, see ``tests/support/bluesky_peer.py``) is started once
for the session on free ports with its rate limits on; each test makes its own ``.test`` account
with an app password, so per-account limits (30 ``createSession`` in 5 minutes) never leak between
tests. Lead images come from a local HTTP server reached through a guarded client that allows only
its port. Without the peer installed the tests that need it skip loudly; under ``CI=true`` they fail.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.bluesky_peer import Account, BlueskyPeer, PeerUnavailable, in_ci
from tests.support.httpserver import HTTPTestServer, Response
from worker.errors import EndpointDisabled, PermanentShareError, TokenRejected, TransientShareError
from worker.http import HttpClient
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint, idempotency_key
from worker.share.bluesky import BlueskyEndpoint, jwt_expiry, record_key, tid
from worker.share.text import grapheme_length, utf8_length

from .conftest import FIXED_NOW, FIXTURES, endpoint_config

BSKY = FIXTURES / "bluesky"
TID_SYNTAX = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
FIRST_SEEN = datetime(2024, 5, 1, 9, 45, 12, 345678, tzinfo=UTC)
LEAD = (BSKY / "lead.jpg").read_bytes()
_names = iter(range(1, 100_000))


class RecordingClient(HttpClient):
    """A real HttpClient that also notes each request's method and XRPC name (to count refreshes)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append(url.rsplit("/", 1)[-1].split("?")[0])
        return super().request(method, url, **kwargs)


@pytest.fixture(scope="session")
def pds() -> Iterator[BlueskyPeer]:
    """The reference PDS for the session; skipped loudly when not installed, a failure in CI."""
    peer = BlueskyPeer()
    try:
        peer.start()
    except PeerUnavailable as exc:
        message = f"the reference Bluesky PDS cannot run, so the Bluesky tests cannot: {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip("*** " + message + " ***")
    yield peer
    peer.stop()


@pytest.fixture
def account(pds: BlueskyPeer) -> Account:
    """A fresh account on the peer."""
    return pds.create_account(f"syn{next(_names)}t{int(time.time()) % 100000}")


@pytest.fixture(scope="module")
def images() -> Iterator[HTTPTestServer]:
    """Serves the lead image (and a 404 beside it)."""
    with HTTPTestServer(root=None) as server:
        server.route("/img/lead.jpg", Response(200, LEAD, {"Content-Type": "image/jpeg"}))
        yield server


@pytest.fixture
def bsky_article(article: ShareArticle, images: HTTPTestServer) -> ShareArticle:
    """The Romanian article with an emoji in the title, a local lead image and a first_seen time."""
    return dataclasses.replace(
        article,
        title="Bursa de la București crește 📈 pentru a cincea zi consecutiv",
        image=images.url("/img/lead.jpg"),
        first_seen=FIRST_SEEN,
    )


def make(
    service: str,
    identifier: str,
    app_password: str,
    *,
    tokens: MemoryTokenStore | None = None,
    images: HTTPTestServer | None = None,
    **extra: Any,
) -> BlueskyEndpoint:
    """A Bluesky endpoint on ``service`` with a recording client."""
    config = endpoint_config(
        {
            "name": "bsky",
            "kind": "bluesky",
            "service": service,
            "identifier": identifier,
            "app_password": "${BSKY_APP_PASSWORD}",
            **extra,
        },
        {"BSKY_APP_PASSWORD": app_password},
    )
    media = HttpClient(allow_hosts=[images.host_port]) if images else None
    ep = get_endpoint(config, http=RecordingClient(), media_http=media, tokens=tokens or MemoryTokenStore())
    assert isinstance(ep, BlueskyEndpoint)
    return ep


def on(pds: BlueskyPeer, account: Account, **kwargs: Any) -> BlueskyEndpoint:
    """An endpoint logged into ``account`` on the peer."""
    return make(pds.url, account.handle, account.app_password, **kwargs)


def calls(ep: BlueskyEndpoint) -> list[str]:
    """The XRPC methods the endpoint called, in order."""
    assert isinstance(ep.http, RecordingClient)
    return ep.http.calls


def fake_jwt(claims: dict[str, Any], secret: str = "not-the-pds-secret") -> str:
    """An HS256 JWT (the PDS signs access tokens this way; with the peer's secret it verifies)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    head = part({"typ": "at+jwt", "alg": "HS256"}) + "." + part(claims)
    signature = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def assert_clean(text: str, *secrets: str) -> None:
    """No credential in ``text``."""
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------- without the peer


def test_tid_syntax_and_known_values() -> None:
    assert tid(0, 0) == "2222222222222"
    # The spec's example pair from @atcute/tid: create(1724171495793000, 512).
    assert tid(1724171495793000, 512) == "3l25zusnsfck2"
    assert TID_SYNTAX.match(tid((1 << 53) - 1, 1023))
    with pytest.raises(ValueError):
        tid(1 << 53, 0)


def test_record_key_is_a_stable_tid_near_first_seen() -> None:
    key = "syn_42_0123456789abcdef_bsky"
    rkey = record_key(key, FIRST_SEEN)
    assert TID_SYNTAX.match(rkey)
    assert rkey == record_key(key, FIRST_SEEN.replace(microsecond=0))
    assert rkey != record_key(key + "x", FIRST_SEEN)
    assert record_key(key, FIRST_SEEN.replace(tzinfo=None)) == rkey
    # Decode the TID: the timestamp lies within the second first_seen fell in.
    value = 0
    for char in rkey:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    micros = value >> 10
    assert int(FIRST_SEEN.replace(microsecond=0).timestamp()) == micros // 1_000_000


def test_jwt_expiry_reads_exp_without_verifying() -> None:
    assert jwt_expiry(fake_jwt({"exp": 1796201222, "sub": "did:plc:x"})) == 1796201222
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None


def test_length_enforces_graphemes_and_bytes() -> None:
    ep = make("https://bsky.example", "someone.test", "app-pass-1234")
    assert ep.text_limit() == 300
    # 300 Latin graphemes fit; 301 do not.
    assert ep.text_length("a" * 300) == 300 and ep.text_length("a" * 301) == 301
    # 150 family emoji: 150 graphemes but 3,750 bytes, over the byte limit.
    family = "👨‍👩‍👧‍👦" * 150
    assert grapheme_length(family) == 150 and utf8_length(family) > 3000
    assert ep.text_length(family) > 300
    # 120 of them are exactly 3,000 bytes: at the limit; one more is over it.
    assert ep.text_length("👨‍👩‍👧‍👦" * 120) == 300 and ep.text_length("👨‍👩‍👧‍👦" * 121) > 300
    # Romanian ș is 2 bytes: 300 of them are 300 graphemes and 600 bytes, the grapheme count binds.
    assert ep.text_length("ș" * 300) == 300 and ep.text_length("ș" * 301) == 301


def test_render_fits_a_byte_heavy_article_in_both_limits(bsky_article: ShareArticle) -> None:
    heavy = dataclasses.replace(bsky_article, summary="👨‍👩‍👧‍👦 " * 200)
    ep = make("https://bsky.example", "someone.test", "app-pass-1234")
    text = ep.render(heavy).text
    assert grapheme_length(text) <= 300 and utf8_length(text) <= 3000
    assert heavy.url in text


def test_payload_matches_golden_fixture(bsky_article: ShareArticle) -> None:
    golden = json.loads((BSKY / "put_record.expected.json").read_text(encoding="utf-8"))
    article = dataclasses.replace(bsky_article, image="https://stiri.example.ro/img/bvb.jpg")
    config_pw = "app-pass-abcd-efgh"
    ep = make("https://bsky.example", "someone.test", config_pw)
    ep._clock = lambda: FIXED_NOW
    preview = ep.render(article)
    assert preview.payload == golden
    assert preview.image == article.image
    assert config_pw not in json.dumps(preview.payload)
    assert golden["rkey"] == record_key(idempotency_key(article, "bsky"), FIRST_SEEN)
    # The offsets are UTF-8 bytes: ă, ș, ț and 📈 before the link make them differ from code points.
    raw = golden["record"]["text"].encode("utf-8")
    pieces = [
        raw[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in golden["record"]["facets"]
    ]
    assert pieces == [article.url, "#economie", "#Bursa", "#piațaDeCapital", "#BET"]
    assert golden["record"]["text"].index(article.url) < golden["record"]["facets"][0]["index"]["byteStart"]


def test_langs_come_from_config_first(bsky_article: ShareArticle) -> None:
    ep = make("https://bsky.example", "someone.test", "app-pass-1234", langs=["ro", "en"])
    assert ep.render(bsky_article).payload["record"]["langs"] == ["ro", "en"]
    bare = dataclasses.replace(bsky_article, language=None)
    plain = make("https://bsky.example", "someone.test", "app-pass-1234")
    assert "langs" not in plain.render(bare).payload["record"]


def test_301_graphemes_refused_before_anything_is_sent(
    bsky_article: ShareArticle, closed_port_url: str
) -> None:
    # Nothing listens on the service: had a request gone out, this would be a TransientShareError.
    ep = make(closed_port_url.rsplit("/", 1)[0], "someone.test", "app-pass-1234")
    preview = ep.render(bsky_article)
    long = dataclasses.replace(preview, payload={**preview.payload, "record": {"text": "é" * 301}})
    with pytest.raises(PermanentShareError, match="301 graphemes") as caught:
        ep.publish(long, "syn_42_0123456789abcdef_bsky")
    assert not isinstance(caught.value, TransientShareError)
    assert calls(ep) == [] and ep.tokens.load("bsky") == {}


def test_an_article_without_first_seen_cannot_be_published(bsky_article: ShareArticle) -> None:
    bare = dataclasses.replace(bsky_article, first_seen=None, published=None)
    ep = make("https://bsky.example", "someone.test", "app-pass-1234")
    with pytest.raises(PermanentShareError, match="first_seen"):
        ep.publish(ep.render(bare), "syn_42_0123456789abcdef_bsky")
    assert calls(ep) == []


# ---------------------------------------------------------------------- against the PDS


def test_post_with_facets_card_and_thumb_reads_back(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle, images: HTTPTestServer
) -> None:
    ep = on(pds, account, images=images)
    preview = ep.render(bsky_article)
    key = idempotency_key(bsky_article, "bsky")
    result = ep.publish(preview, key)

    rkey = record_key(key, FIRST_SEEN)
    assert result.remote_id == f"at://{account.did}/app.bsky.feed.post/{rkey}"
    assert result.remote_url == f"https://bsky.app/profile/{account.did}/post/{rkey}"
    assert not result.duplicate
    assert calls(ep) == ["com.atproto.server.createSession", "com.atproto.repo.uploadBlob",
                         "com.atproto.repo.putRecord"]  # fmt: skip
    stored = ep.tokens.load("bsky")
    assert stored["did"] == account.did and set(stored) >= {"accessJwt", "refreshJwt"}

    got = pds.get("com.atproto.repo.getRecord", repo=account.did, collection="app.bsky.feed.post", rkey=rkey)
    assert got.status_code == 200, got.text
    record = got.json()["value"]
    assert record["text"] == preview.text and "📈" in record["text"] and "București" in record["text"]
    assert record["langs"] == ["ro"]
    raw = record["text"].encode("utf-8")
    spans = {}
    for facet in record["facets"]:
        (feature,) = facet["features"]
        piece = raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8")
        spans[piece] = feature
    assert spans[bsky_article.url] == {"$type": "app.bsky.richtext.facet#link", "uri": bsky_article.url}
    assert spans["#piațaDeCapital"] == {"$type": "app.bsky.richtext.facet#tag", "tag": "piațaDeCapital"}
    assert set(spans) == {bsky_article.url, "#economie", "#Bursa", "#piațaDeCapital", "#BET"}

    external = record["embed"]["external"]
    assert record["embed"]["$type"] == "app.bsky.embed.external"
    assert external["uri"] == bsky_article.url and external["title"] == bsky_article.title
    thumb = external["thumb"]
    assert thumb["mimeType"] == "image/jpeg" and thumb["size"] == len(LEAD)
    blob = pds.get("com.atproto.sync.getBlob", did=account.did, cid=thumb["ref"]["$link"])
    assert blob.status_code == 200 and blob.content == LEAD

    assert ep.lookup(preview, key) == result
    assert ep.lookup(preview, key + "-other") is None


def test_same_key_twice_makes_one_record(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle
) -> None:
    ep = on(pds, account, image=False)
    key = idempotency_key(bsky_article, "bsky")
    first = ep.publish(ep.render(bsky_article), key)
    # A redelivery renders again (a later createdAt) and sends again: the PDS keeps the first post.
    again = ep.publish(ep.render(bsky_article), key)
    assert again.duplicate and not first.duplicate
    assert again.remote_id == first.remote_id and again.remote_url == first.remote_url
    listed = pds.get("com.atproto.repo.listRecords", repo=account.did, collection="app.bsky.feed.post")
    assert [r["uri"] for r in listed.json()["records"]] == [first.remote_id]
    other = ep.publish(ep.render(bsky_article), key + "-2")
    assert other.remote_id != first.remote_id
    listed = pds.get("com.atproto.repo.listRecords", repo=account.did, collection="app.bsky.feed.post")
    assert len(listed.json()["records"]) == 2


def test_invalid_access_token_is_refreshed_once(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle
) -> None:
    tokens = MemoryTokenStore()
    ep = on(pds, account, tokens=tokens, image=False)
    session = ep.login()
    # A token the PDS will not verify, but whose exp says it has hours left: only the answer tells.
    forged = fake_jwt({"scope": "com.atproto.appPass", "sub": account.did, "exp": int(time.time()) + 7200})
    tokens.save("bsky", {**session, "accessJwt": forged})
    calls(ep).clear()

    result = ep.publish(ep.render(bsky_article), idempotency_key(bsky_article, "bsky"))
    assert result.remote_id.startswith(f"at://{account.did}/")
    assert calls(ep) == [
        "com.atproto.repo.putRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.repo.putRecord",
    ]
    stored = tokens.load("bsky")
    # The refresh token rotates; the new access JWT may equal the first one if issued in the same second.
    assert stored["accessJwt"] != forged and stored["refreshJwt"] != session["refreshJwt"]


def test_access_token_near_exp_is_refreshed_before_sending(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle
) -> None:
    tokens = MemoryTokenStore()
    ep = on(pds, account, tokens=tokens, image=False)
    session = ep.login()
    expired = fake_jwt({"scope": "com.atproto.appPass", "sub": account.did, "exp": int(time.time()) - 10})
    tokens.save("bsky", {**session, "accessJwt": expired})
    calls(ep).clear()
    ep.publish(ep.render(bsky_article), idempotency_key(bsky_article, "bsky"))
    assert calls(ep) == ["com.atproto.server.refreshSession", "com.atproto.repo.putRecord"]


def test_dead_refresh_token_logs_in_again(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle
) -> None:
    tokens = MemoryTokenStore()
    ep = on(pds, account, tokens=tokens, image=False)
    session = ep.login()
    tokens.save("bsky", {**session, "accessJwt": "garbage.garbage.garbage", "refreshJwt": "dead.dead.dead"})
    calls(ep).clear()
    ep.publish(ep.render(bsky_article), idempotency_key(bsky_article, "bsky"))
    assert calls(ep) == [
        "com.atproto.repo.putRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.server.createSession",
        "com.atproto.repo.putRecord",
    ]


def test_pds_expired_token_answer_is_a_400_mapped_to_token_rejected(
    pds: BlueskyPeer, account: Account
) -> None:
    ep = on(pds, account)
    session = ep.login()
    now = int(time.time())
    # Signed with the peer's own secret, so the PDS gets past the signature and finds it expired.
    expired = fake_jwt(
        {"scope": "com.atproto.appPass", "aud": "did:web:localhost", "sub": account.did,
         "iat": now - 7200, "exp": now - 60},
        pds.jwt_secret,
    )  # fmt: skip
    record = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2024-05-01T00:00:00Z"}
    with pytest.raises(TokenRejected, match="ExpiredToken") as caught:
        ep.send(
            "POST",
            ep.xrpc("com.atproto.repo.putRecord"),
            what="putRecord",
            json={
                "repo": session["did"],
                "collection": "app.bsky.feed.post",
                "rkey": tid(1, 1),
                "record": record,
            },
            headers={"Authorization": f"Bearer {expired}"},
        )
    assert caught.value.status == 400
    assert_clean(str(caught.value), expired, account.app_password)


def test_wrong_app_password_disables_without_leaking_it(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle
) -> None:
    wrong = "wrong-app-pass-9999"
    ep = make(pds.url, account.handle, wrong, image=False)
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(bsky_article), idempotency_key(bsky_article, "bsky"))
    assert caught.value.status == 401 and "Invalid identifier or password" in str(caught.value)
    assert_clean(str(caught.value), wrong, account.app_password)
    assert ep.tokens.load("bsky") == {}


def test_missing_image_leaves_the_card_without_thumb(
    pds: BlueskyPeer, account: Account, bsky_article: ShareArticle, images: HTTPTestServer
) -> None:
    ep = on(pds, account, images=images)
    gone = dataclasses.replace(bsky_article, image=images.url("/img/missing.jpg"))
    result = ep.publish(ep.render(gone), idempotency_key(gone, "bsky"))
    rkey = result.remote_id.rsplit("/", 1)[-1]
    got = pds.get("com.atproto.repo.getRecord", repo=account.did, collection="app.bsky.feed.post", rkey=rkey)
    external = got.json()["value"]["embed"]["external"]
    assert external["uri"] == gone.url and "thumb" not in external
    assert "com.atproto.repo.uploadBlob" not in calls(ep)


def test_31st_create_session_is_rate_limited_with_retry_after(pds: BlueskyPeer, account: Account) -> None:
    ep = on(pds, account)
    tokens: list[str] = []
    for attempt in range(1, 32):
        try:
            tokens.append(ep.login()["accessJwt"])
        except TransientShareError as exc:
            assert attempt == 31
            assert exc.status == 429 and exc.retry_after is not None and 0 < exc.retry_after <= 300
            assert "RateLimitExceeded" in str(exc) or "Rate Limit" in str(exc)
            assert_clean(str(exc), account.app_password, *tokens)
            break
    else:
        pytest.fail("31 createSession calls in a row were all accepted")
