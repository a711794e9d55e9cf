"""Per-endpoint timeouts and ``uncertain`` shares settled by a lookup (worker/outbox/), in process.

A lost answer (no answer within the endpoint's ``timeout``) on a network that can look its posts
up (the real mastodon-mock behind a slow proxy) becomes ``uncertain``, visibly, and is settled by a
later lookup: ``sent`` with the remote id when the post shows up, back to ``pending`` (and sent once)
when the lookup proves it absent. Networks that cannot look up still need an operator, and the
status says which is which. A webhook receiver slower than the default timeout gets one delivery
once the endpoint's ``timeout`` is above its delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import worker.share as share_pkg
from config.model import ConfigError, parse_config
from tests.pipeline import test_outbox
from tests.pipeline.receivers import Answer, Receiver, SlowProxy
from tests.pipeline.test_outbox import ENV, NoLookupWebhook, Outbox, hook
from tests.support.bluesky_peer import BlueskyPeer, PeerUnavailable, in_ci
from tests.support.mastodon_peer import TOKEN, MastodonPeer
from worker.errors import Deferred
from worker.outbox.delivery import deliver_share
from worker.outbox.retry import ABSENT_AFTER
from worker.outbox.settling import OPERATOR_NOTE, SETTLING_NOTE, due_uncertain
from worker.store.models import Share, utcnow

# The outbox tests' fixtures, shared rather than copied.
make_outbox = test_outbox.make_outbox
make_receiver = test_outbox.make_receiver
receiver = test_outbox.receiver
redis_url = test_outbox.redis_url


def masto(url: str, **extra: object) -> dict[str, object]:
    """A Mastodon endpoint on ``url`` that waits 1 s for an answer."""
    return {
        "name": "masto",
        "kind": "mastodon",
        "instance": url,
        "access_token": "${MASTO_TOKEN}",
        "timeout": "1s",
        **extra,
    }


@pytest.fixture
def masto_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer's token as ``${MASTO_TOKEN}``."""
    monkeypatch.setitem(test_outbox.ENV, "MASTO_TOKEN", TOKEN)


def _ours(mastodon: MastodonPeer, outbox: Outbox, share_id: int) -> list[dict[str, Any]]:
    """The statuses on the peer that link the share's article."""
    with outbox.rt.session() as session:
        row = session.get(Share, share_id)
        assert row is not None
        url = row.article.canonical_url
    return [s for s in mastodon.statuses() if url in str(s["content"])]


@pytest.mark.usefixtures("masto_env")
def test_a_slow_post_becomes_uncertain_and_a_lookup_settles_it_once(
    make_outbox: Callable[..., Outbox], mastodon: MastodonPeer
) -> None:
    with SlowProxy(mastodon.url, "/api/v1/statuses", delay=2.5) as proxy:
        outbox = make_outbox([masto(proxy.url)])
        share_id = outbox.plan_one(outbox.article(), "masto")
        with pytest.raises(Deferred, match="looking the post up"):
            deliver_share(outbox.rt, share_id)
        row = outbox.share(share_id)
        assert row.status == "uncertain" and SETTLING_NOTE in (row.error or ""), row.error
        assert "no answer within 1s" in (row.error or "")
        status = outbox.status()["endpoints"][0]
        assert (status["uncertain"], status["settling"], status["needs_operator"]) == (1, 1, 0)

        assert proxy.forwarded.wait(10)  # the slow network has made the post by now
        outbox.due(share_id)
        assert deliver_share(outbox.rt, share_id) == "sent"
        posted = _ours(mastodon, outbox, share_id)
        row = outbox.share(share_id)
        assert [s["id"] for s in posted] == [row.remote_id]
        assert row.remote_url == posted[0]["url"]
        assert len(proxy.posts) == 1  # looked up, never posted again
        assert deliver_share(outbox.rt, share_id) == "sent"
        assert len(proxy.posts) == 1


@pytest.mark.usefixtures("masto_env")
def test_an_uncertain_post_the_lookup_proves_absent_is_sent_again_once(
    make_outbox: Callable[..., Outbox], mastodon: MastodonPeer
) -> None:
    with SlowProxy(mastodon.url, "/api/v1/statuses", delay=0, swallow=True) as proxy:
        outbox = make_outbox([masto(proxy.url)])
        share_id = outbox.plan_one(outbox.article(), "masto")
        with pytest.raises(Deferred):
            deliver_share(outbox.rt, share_id)
        assert outbox.share(share_id).status == "uncertain"
        # Not found, but too soon to tell: the request may still be on its way. Look again later.
        outbox.due(share_id)
        with pytest.raises(Deferred, match="looking again"):
            deliver_share(outbox.rt, share_id)
        row = outbox.share(share_id)
        assert row.status == "uncertain" and row.not_before is not None and row.not_before > utcnow()
        assert len(proxy.posts) == 1
        # Long after the claim: the lookup proves the post absent, so it is sent (once).
        outbox.set(share_id, claimed_at=utcnow() - timedelta(seconds=ABSENT_AFTER + 1))
        outbox.due(share_id)
        assert deliver_share(outbox.rt, share_id) == "sent"
        posted = _ours(mastodon, outbox, share_id)
        assert [s["id"] for s in posted] == [outbox.share(share_id).remote_id]
        assert len(proxy.posts) == 2


@pytest.fixture(scope="module")
def pds() -> Iterator[BlueskyPeer]:
    """The reference PDS; skipped loudly when not installed, a failure in CI."""
    peer = BlueskyPeer()
    try:
        peer.start()
    except PeerUnavailable as exc:
        message = f"the reference Bluesky PDS cannot run, so this test cannot: {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip("*** " + message + " ***")
    yield peer
    peer.stop()


def test_a_slow_bluesky_post_is_settled_by_its_record_key(
    make_outbox: Callable[..., Outbox], pds: BlueskyPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = pds.create_account(f"slow{int(time.time()) % 100000}")
    monkeypatch.setitem(test_outbox.ENV, "BSKY_PASSWORD", account.app_password)
    with SlowProxy(pds.url, "/xrpc/com.atproto.repo.putRecord", delay=2.5) as proxy:
        outbox = make_outbox(
            [
                {
                    "name": "sky",
                    "kind": "bluesky",
                    "service": proxy.url,
                    "identifier": account.handle,
                    "app_password": "${BSKY_PASSWORD}",
                    "timeout": "1s",
                    "image": False,
                }
            ]
        )
        share_id = outbox.plan_one(outbox.article(), "sky")
        with pytest.raises(Deferred, match="looking the post up"):
            deliver_share(outbox.rt, share_id)
        assert outbox.share(share_id).status == "uncertain"
        assert proxy.forwarded.wait(10)
        outbox.due(share_id)
        assert deliver_share(outbox.rt, share_id) == "sent"
        row = outbox.share(share_id)
        assert row.remote_id is not None and row.remote_id.startswith(f"at://{account.did}/")
        records = pds.get(
            "com.atproto.repo.listRecords", repo=account.did, collection="app.bsky.feed.post"
        ).json()["records"]
        assert [r["uri"] for r in records] == [row.remote_id]
        assert len(proxy.posts) == 1


def test_a_lost_answer_on_a_network_without_lookup_needs_an_operator(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", NoLookupWebhook)
    receiver.script = [Answer(200, delay=1.5)]
    outbox = make_outbox([hook(receiver.url, timeout="1s")])
    share_id = outbox.plan_one(outbox.article(), "hook")
    assert deliver_share(outbox.rt, share_id) == "uncertain"
    assert OPERATOR_NOTE in (outbox.share(share_id).error or "")
    status = outbox.status()["endpoints"][0]
    assert (status["uncertain"], status["settling"], status["needs_operator"]) == (1, 0, 1)
    assert deliver_share(outbox.rt, share_id) == "uncertain"
    assert len(receiver.received) == 1
    assert due_uncertain(outbox.rt) == []  # nothing to look up: left to the operator


@pytest.mark.usefixtures("masto_env")
def test_beat_finds_uncertain_shares_whose_lookup_is_overdue(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([masto("http://127.0.0.1:9"), hook(receiver.url)])
    due, scheduled, other = outbox.article("Due"), outbox.article("Scheduled"), outbox.article("Other")
    lost = outbox.plan_one(due, "masto")
    waiting = outbox.plan_one(scheduled, "masto")
    hooked = outbox.plan_one(other, "hook")
    outbox.set(lost, status="uncertain", not_before=utcnow() - timedelta(minutes=5))
    outbox.set(waiting, status="uncertain", not_before=utcnow() + timedelta(seconds=30))
    outbox.set(hooked, status="uncertain", not_before=None)
    assert due_uncertain(outbox.rt) == [lost]


def test_a_slow_webhook_receiver_gets_one_delivery_with_a_timeout_above_its_delay(
    make_outbox: Callable[..., Outbox], make_receiver: Callable[[], Receiver]
) -> None:
    patient, impatient = make_receiver(), make_receiver()
    patient.default = impatient.default = Answer(200, delay=1.5)
    outbox = make_outbox([hook(patient.url, timeout="4s"), hook(impatient.url, "short", timeout="1s")])
    article = outbox.article()
    assert deliver_share(outbox.rt, outbox.plan_one(article, "hook")) == "sent"
    assert len(patient.received) == 1
    # Below the receiver's delay: sent again with the same webhook-id, and the share says why.
    short = outbox.plan_one(article, "short")
    with pytest.raises(Deferred):
        deliver_share(outbox.rt, short)
    row = outbox.share(short)
    assert row.status == "pending" and "same idempotency key" in (row.error or "")
    assert "`timeout`" in (row.error or "")
    assert len(impatient.received) == 1


@pytest.mark.parametrize(
    ("value", "expected"), [("0.5s", None), ("61s", None), ("30s", 30.0), ("2m", None), ("45", 45.0)]
)
def test_the_endpoint_timeout_is_bounded(value: str, expected: float | None) -> None:
    raw = {"endpoints": [hook("https://hooks.example/x", timeout=value)]}
    if expected is None:
        with pytest.raises(ConfigError, match=r"endpoints\[0\]\.timeout: Input should be"):
            parse_config(raw, lookup=ENV.get)
    else:
        assert parse_config(raw, lookup=ENV.get).endpoint("hook").timeout == expected
