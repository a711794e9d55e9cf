"""One post per story per endpoint (issue 18): the outbox on SQLite and PostgreSQL, real Redis,
real webhook receivers on 127.0.0.1.

Stories are made here the way the store's assignment leaves them (a ``stories`` row, the two
columns on each article), so these tests do not need the matcher. Covered: a later version is
skipped as ``same_story`` (and counted so in status), an article without a story plans as before,
two versions planned at the same moment by two workers make one share, ``story_window`` holds a
new story's share, and delivery posts the version that fits the endpoint (its languages, source
priority, its routing rules), moving the share to it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update

from tests.pipeline import test_outbox
from tests.pipeline.receivers import Receiver, SlowProxy
from tests.pipeline.test_outbox import Outbox, hook
from tests.support.mastodon_peer import TOKEN, MastodonPeer
from worker.errors import Deferred
from worker.ops import sweep as sweeping
from worker.outbox.delivery import deliver_share
from worker.outbox.planning import plan_shares
from worker.outbox.storyedit import ALSO_REPORTED
from worker.store.db import get_engine
from worker.store.models import Article, Share, ShareSkip, Story, utcnow

# The outbox tests' fixtures, shared rather than copied.
make_outbox = test_outbox.make_outbox
make_receiver = test_outbox.make_receiver
receiver = test_outbox.receiver
redis_url = test_outbox.redis_url

PRIORITY_SOURCES = [
    {"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/"},
    {"name": "harbour", "kind": "page", "url": "http://127.0.0.1:9/harbour.html", "priority": 10},
]


def story_of(outbox: Outbox, *article_ids: int, created: Any = None) -> int:
    """Make one story of ``article_ids`` (the first its main version), as the store's assignment does."""
    with outbox.rt.session() as session:
        first = session.get(Article, article_ids[0])
        assert first is not None
        story = Story(
            title=first.title,
            first_published=first.published,
            entry_key=f"articles/{first.id}",
            entry_day=first.first_seen_at.date(),
            created_at=created or utcnow(),
        )
        session.add(story)
        session.flush()
        for position, article_id in enumerate(article_ids):
            row = session.get(Article, article_id)
            assert row is not None
            row.story_id, row.story_role = story.id, "main" if position == 0 else "version"
        return story.id


def join(outbox: Outbox, story_id: int, article_id: int) -> None:
    """``article_id`` joins story ``story_id`` as another version."""
    with outbox.rt.session() as session:
        row = session.get(Article, article_id)
        assert row is not None
        row.story_id, row.story_role = story_id, "version"


def skips(outbox: Outbox) -> dict[tuple[int, str], str]:
    """Every share skip: ``{(article_id, endpoint): reason}``."""
    with outbox.rt.session() as session:
        return {(s.article_id, s.endpoint): s.reason for s in session.scalars(select(ShareSkip))}


def urls(hooks: Receiver) -> list[str]:
    """The article URLs the receiver was sent, in order."""
    return [json.loads(body)["data"]["url"] for _, body in hooks.received]


def url_of(outbox: Outbox, article_id: int) -> str:
    with outbox.rt.session() as session:
        row = session.get(Article, article_id)
        assert row is not None
        return row.canonical_url


# ---------------------------------------------------------------- one share per (story, endpoint)


def test_a_later_version_of_a_planned_story_is_skipped_as_same_story(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, story_window=0)])
    first = outbox.article("Cluj and Rawabi sign a partnership")
    story = story_of(outbox, first)
    [share_id] = plan_shares(outbox.rt, first)
    assert outbox.share(share_id).story_id == story

    second = outbox.article("Rawabi hub and Cluj cluster join forces", source="harbour")
    join(outbox, story, second)
    assert plan_shares(outbox.rt, second) == []
    assert plan_shares(outbox.rt, second) == []  # planning again changes nothing
    assert [(s.article_id, s.story_id) for s in outbox.shares()] == [(first, story)]
    assert skips(outbox) == {(second, "hook"): "same_story"}
    [endpoint] = outbox.status()["endpoints"]
    assert endpoint["skipped_reasons"] == {"same_story": 1}

    assert deliver_share(outbox.rt, share_id) == "sent"
    assert plan_shares(outbox.rt, second) == []  # a webhook does not edit: nothing to deliver
    assert len(receiver.received) == 1


def test_articles_without_a_story_each_get_their_share(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, story_window="5m")])  # no story: no wait
    first, second = outbox.article("One"), outbox.article("Two")
    [a] = plan_shares(outbox.rt, first)
    [b] = plan_shares(outbox.rt, second)
    assert [(s.article_id, s.story_id, s.not_before) for s in outbox.shares()] == [
        (first, None, None),
        (second, None, None),
    ]
    assert deliver_share(outbox.rt, a) == deliver_share(outbox.rt, b) == "sent"
    assert len(receiver.received) == 2 and skips(outbox) == {}


def test_two_versions_planned_at_once_by_two_workers_make_one_share(
    make_outbox: Callable[..., Outbox], receiver: Receiver, database_url: str
) -> None:
    """Worker A reads "no share of this story yet", worker B plans and commits its version, then A
    inserts: the unique (story, endpoint) index refuses A's row and A records ``same_story``."""
    outbox = make_outbox([hook(receiver.url, story_window=0)])
    worker_a, worker_b = outbox.rt, outbox.runtime()
    for rt in (worker_a, worker_b):  # each worker has synced its endpoint rows before
        plan_shares(rt, outbox.article("Warm-up"))
    first = outbox.article("Cluj and Rawabi sign a partnership")
    second = outbox.article("Rawabi hub and Cluj cluster join forces", source="harbour")
    story = story_of(outbox, first, second)

    a_at_insert, b_done = threading.Event(), threading.Event()
    a_thread: list[threading.Thread] = []
    waited: list[bool] = []

    def hold_a_before_its_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread() in a_thread and statement.lstrip().upper().startswith(
            "INSERT INTO SHARES"
        ):
            a_at_insert.set()
            waited.append(b_done.wait(30))

    engine = get_engine(database_url)
    event.listen(engine, "before_cursor_execute", hold_a_before_its_insert)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def run(name: str, rt: Any, article_id: int, done: threading.Event | None) -> None:
        try:
            results[name] = plan_shares(rt, article_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    try:
        a = threading.Thread(target=run, args=("a", worker_a, first, None))
        a_thread.append(a)
        a.start()
        # B starts once A is waiting at its insert (A has read the story's shares: none).
        assert a_at_insert.wait(30)
        b = threading.Thread(target=run, args=("b", worker_b, second, b_done))
        b.start()
        b.join(60)
        a.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", hold_a_before_its_insert)
    assert errors == [] and waited == [True]
    story_shares = [s for s in outbox.shares() if s.story_id == story]
    assert [(s.article_id, s.endpoint) for s in story_shares] == [(second, "hook")]
    assert results == {"a": [], "b": [story_shares[0].id]}
    assert skips(outbox)[(first, "hook")] == "same_story"
    assert deliver_share(worker_a, story_shares[0].id) == "sent"


# ---------------------------------------------------------------- story_window


def test_story_window_holds_a_new_storys_share(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox(
        [
            hook(receiver.url, story_window="2m"),
            hook(receiver.url, name="delayed", story_window="2m", delay="10m"),
            hook(receiver.url, name="prompt", story_window=0),
        ]
    )
    article = outbox.article()
    began = utcnow() - timedelta(seconds=30)  # the story's first version became ready 30 s ago
    story_of(outbox, article, created=began)
    plan_shares(outbox.rt, article)
    shares = {s.endpoint: s for s in outbox.shares()}
    assert shares["hook"].not_before == began + timedelta(minutes=2)
    # The later of the two waits wins: delay after now (10 min) outlasts the story's window.
    assert shares["delayed"].not_before is not None
    assert shares["delayed"].not_before - utcnow() > timedelta(minutes=9)
    assert shares["prompt"].not_before is None
    with pytest.raises(Deferred, match="scheduled time") as info:
        deliver_share(outbox.rt, shares["hook"].id)
    assert 80 <= info.value.seconds <= 90
    assert deliver_share(outbox.rt, shares["prompt"].id) == "sent"
    outbox.due(shares["hook"].id)
    assert deliver_share(outbox.rt, shares["hook"].id) == "sent"
    assert len(receiver.received) == 2


def test_story_window_has_passed_for_an_old_story(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, story_window="5m")])
    old, new = outbox.article("Old"), outbox.article("New")
    story = story_of(outbox, old, created=utcnow() - timedelta(minutes=6))
    join(outbox, story, new)
    [share_id] = plan_shares(outbox.rt, new)
    assert outbox.share(share_id).not_before is None
    assert deliver_share(outbox.rt, share_id) == "sent"


# ---------------------------------------------------------------- the version that fits, at delivery


def test_delivery_posts_the_version_in_the_endpoints_language(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox(
        [
            hook(receiver.url, name="ro", languages=["ro", "en"], story_window=0),
            hook(receiver.url, name="en", languages=["en"], story_window=0),
            hook(receiver.url, name="any", story_window=0),
        ]
    )
    english = outbox.article("Cluj and Rawabi sign a partnership", language="en")
    story = story_of(outbox, english)
    planned = plan_shares(outbox.rt, english)
    romanian = outbox.article("Clusterul clujean semnează un parteneriat", language="ro", source="harbour")
    join(outbox, story, romanian)
    assert plan_shares(outbox.rt, romanian) == []
    for share_id in planned:
        assert deliver_share(outbox.rt, share_id) == "sent"
    posted = {s.endpoint: s.article_id for s in outbox.shares()}
    # ro: its first language; en: routing selects only English; any: the main-version rule
    # (priority is equal: the earliest published, the English one).
    assert posted == {"ro": romanian, "en": english, "any": english}
    assert sorted(urls(receiver)) == sorted([url_of(outbox, romanian)] + [url_of(outbox, english)] * 2)
    # The skips follow the share: the version not posted is the one skipped.
    assert skips(outbox) == {
        (english, "ro"): "same_story",
        (romanian, "en"): "routing",
        (romanian, "any"): "same_story",
    }


def test_delivery_posts_the_preferred_sources_version_unless_routing_refuses_it(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox(
        [
            hook(receiver.url, story_window=0),
            hook(receiver.url, name="valley-only", sources=["valley"], story_window=0),
        ],
        sources=PRIORITY_SOURCES,
    )
    partner = outbox.article("A partner's write-up", source="valley")
    story = story_of(outbox, partner)
    planned = plan_shares(outbox.rt, partner)
    own = outbox.article("The hub's own write-up", source="harbour")  # priority 10
    join(outbox, story, own)
    assert plan_shares(outbox.rt, own) == []
    for share_id in planned:
        assert deliver_share(outbox.rt, share_id) == "sent"
    assert [(s.endpoint, s.article_id) for s in outbox.shares()] == [("hook", own), ("valley-only", partner)]
    assert sorted(urls(receiver)) == sorted([url_of(outbox, own), url_of(outbox, partner)])


def test_a_recovered_claim_keeps_the_version_it_was_claimed_for(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    """A worker died after claiming version A; version B (preferred) arrived since: the recovery
    sends A again with A's idempotency key (the receiver deduplicates), never B."""
    outbox = make_outbox([hook(receiver.url, story_window=0)], sources=PRIORITY_SOURCES)
    partner = outbox.article("A partner's write-up", source="valley")
    story = story_of(outbox, partner)
    [share_id] = plan_shares(outbox.rt, partner)
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(hours=1), attempts=1)
    own = outbox.article("The hub's own write-up", source="harbour")
    join(outbox, story, own)
    assert deliver_share(outbox.rt, share_id) == "sent"
    assert outbox.share(share_id).article_id == partner
    assert urls(receiver) == [url_of(outbox, partner)]


def test_a_version_with_its_own_share_is_not_taken_over(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    """A version planned before it joined the story keeps its own share; the story's share does not
    move onto it (the unique (article, endpoint) index)."""
    outbox = make_outbox([hook(receiver.url, story_window=0)], sources=PRIORITY_SOURCES)
    own = outbox.article("The hub's own write-up", source="harbour")
    [own_share] = plan_shares(outbox.rt, own)  # no story yet
    partner = outbox.article("A partner's write-up", source="valley")
    story = story_of(outbox, partner)
    [story_share] = plan_shares(outbox.rt, partner)
    join(outbox, story, own)
    assert deliver_share(outbox.rt, story_share) == "sent"
    assert outbox.share(story_share).article_id == partner
    assert deliver_share(outbox.rt, own_share) == "sent"
    with outbox.rt.session() as session:
        assert session.scalar(select(Share.story_id).where(Share.id == own_share)) is None


def test_the_sweep_does_not_plan_again_a_version_skipped_as_same_story(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    """The sweep plans recent ready articles without a share; a version whose story has its share is
    not one of them (it would be planned, and skipped, again on every sweep)."""
    outbox = make_outbox([hook(receiver.url, story_window=0)])
    a_minute_ago = utcnow() - timedelta(minutes=1)
    first = outbox.article("Cluj and Rawabi sign a partnership", changed_at=a_minute_ago)
    second = outbox.article("Rawabi hub and Cluj cluster join forces", changed_at=a_minute_ago)
    alone = outbox.article("Harbour opens a second quay", changed_at=a_minute_ago)
    story_of(outbox, first, second)
    story_of(outbox, alone)  # a story of its own (one without a story waits for it: see below)
    plan_shares(outbox.rt, first)
    with outbox.rt.session() as session:
        assert sweeping.unplanned_articles(outbox.rt, session, utcnow()) == [alone]


def test_the_sweep_plans_an_article_left_without_a_story_only_once_it_has_one(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    """A worker that dies between making an article ready and placing it in its story leaves it ready
    without a story; one sweep then sends both its story assignment and its planning. Planned first,
    it got a share of its own, outside the story another version had already posted: a second post
    of one story. The sweep plans such an article only once it has its story (the fault suite's
    exactly-once per story)."""
    outbox = make_outbox([hook(receiver.url, story_window=0)])
    a_minute_ago = utcnow() - timedelta(minutes=1)
    first = outbox.article("Cluj and Rawabi sign a partnership", changed_at=a_minute_ago)
    story = story_of(outbox, first)
    [share_id] = plan_shares(outbox.rt, first)
    assert deliver_share(outbox.rt, share_id) == "sent"
    late = outbox.article("Rawabi hub and Cluj cluster join forces", changed_at=a_minute_ago)

    # One sweep: the planning it sends runs (and its shares are delivered) before the assignment.
    with outbox.rt.session() as session:
        planned = sweeping.unplanned_articles(outbox.rt, session, utcnow())
    for article_id in planned:
        for new_id in plan_shares(outbox.rt, article_id):
            deliver_share(outbox.rt, new_id)
    join(outbox, story, late)  # the assignment the same sweep sent
    with outbox.rt.session() as session:
        for article_id in sweeping.unplanned_articles(outbox.rt, session, utcnow()):
            for new_id in plan_shares(outbox.rt, article_id):
                deliver_share(outbox.rt, new_id)

    assert urls(receiver) == [url_of(outbox, first)]  # one post of the story
    assert planned == []
    assert [(s.article_id, s.story_id) for s in outbox.shares()] == [(first, story)]


# ---------------------------------------------------------------- Mastodon story_edit


def masto(url: str, name: str = "masto", **extra: object) -> dict[str, object]:
    """A Mastodon endpoint on the peer ``url`` that edits its story posts, posting at once."""
    return {
        "name": name,
        "kind": "mastodon",
        "instance": url,
        "access_token": "${MASTO_TOKEN}",
        "story_window": 0,
        "story_edit": True,
        **extra,
    }


@pytest.fixture
def masto_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer's token as ``${MASTO_TOKEN}``."""
    monkeypatch.setitem(test_outbox.ENV, "MASTO_TOKEN", TOKEN)


def history(mastodon: MastodonPeer, status_id: str) -> list[dict[str, Any]]:
    """A status's versions (Mastodon's edit history: the first post, then one entry per edit)."""
    found: list[dict[str, Any]] = mastodon.api(f"/api/v1/statuses/{status_id}/history")
    return found


@pytest.mark.usefixtures("masto_env")
def test_a_version_after_the_post_edits_it_once_on_mastodon(
    make_outbox: Callable[..., Outbox], receiver: Receiver, mastodon: MastodonPeer
) -> None:
    outbox = make_outbox(
        [masto(mastodon.url), masto(mastodon.url, name="plain", story_edit=False), hook(receiver.url)],
        sources=[
            {"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/", "title": "Valley News"},
            {"name": "harbour", "kind": "page", "url": "http://127.0.0.1:9/harbour.html"},
            {"name": "hill", "kind": "push"},
        ],
    )
    first = outbox.article("Cluj and Rawabi sign a partnership", source="valley")
    story = story_of(outbox, first)
    planned = plan_shares(outbox.rt, first)
    for share_id in planned:
        assert deliver_share(outbox.rt, share_id) == "sent"
    shares = {s.endpoint: s for s in outbox.shares()}
    posted = shares["masto"].text
    assert posted is not None and "Also reported by" not in posted

    second = outbox.article("Rawabi hub and Cluj cluster join forces", source="harbour")
    join(outbox, story, second)
    # Only the endpoint that edits gets its (sent) story share back; nothing is posted again.
    assert plan_shares(outbox.rt, second) == [shares["masto"].id]
    for _ in range(2):  # a redelivered edit task changes nothing the second time
        assert deliver_share(outbox.rt, shares["masto"].id) == "sent"
    status_id = shares["masto"].remote_id
    assert status_id is not None
    edited = f"{posted}\n\nAlso reported by: harbour {url_of(outbox, second)}"
    assert mastodon.source_text(status_id) == edited
    assert outbox.share(shares["masto"].id).text == edited
    assert len(history(mastodon, status_id)) == 2  # the post and one edit

    third = outbox.article("Parteneriat Cluj-Rawabi", source="hill", language="ro")
    join(outbox, story, third)
    assert plan_shares(outbox.rt, third) == [shares["masto"].id]
    assert deliver_share(outbox.rt, shares["masto"].id) == "sent"
    assert deliver_share(outbox.rt, shares["masto"].id) == "sent"
    text = mastodon.source_text(status_id)
    assert text == f"{edited}, hill {url_of(outbox, third)}"
    assert text.count("Also reported by") == 1
    assert len(history(mastodon, status_id)) == 3
    # The other endpoints: one post each, never edited.
    plain = shares["plain"].remote_id
    assert plain is not None and len(history(mastodon, plain)) == 1
    assert len(receiver.received) == 1
    assert [s.status for s in outbox.shares()] == ["sent"] * 3


@pytest.mark.usefixtures("masto_env")
def test_a_story_edit_stays_within_the_instances_limit(
    make_outbox: Callable[..., Outbox], mastodon: MastodonPeer
) -> None:
    outbox = make_outbox([masto(mastodon.url, max_chars=200, template="{title} {url}")])
    first = outbox.article("Cluj signs")
    story = story_of(outbox, first)
    [share_id] = plan_shares(outbox.rt, first)
    assert deliver_share(outbox.rt, share_id) == "sent"
    # The post takes about 64 characters (these test URLs have no real top-level domain, so
    # Mastodon counts them in full); naming the second version about 86 more, the third 58 more.
    second = outbox.article("Second write-up", source="harbour")
    third = outbox.article("Third", source="harbour")
    join(outbox, story, second)
    join(outbox, story, third)
    assert deliver_share(outbox.rt, share_id) == "sent"
    row = outbox.share(share_id)
    assert row.remote_id is not None and row.text is not None
    text = mastodon.source_text(row.remote_id)
    endpoint = outbox.rt.endpoint("masto")
    posted = row.text.partition(ALSO_REPORTED)[0]
    assert text == row.text == f"{posted}{ALSO_REPORTED}harbour {url_of(outbox, second)}"
    assert (
        endpoint.text_length(text) <= 200 < endpoint.text_length(f"{text}, harbour {url_of(outbox, third)}")
    )


@pytest.mark.usefixtures("masto_env")
def test_a_version_ready_while_the_post_was_being_sent_is_named_right_after(
    make_outbox: Callable[..., Outbox], mastodon: MastodonPeer
) -> None:
    """The version's planning found the story's share ``sending`` (nothing to hand back): the edit
    follows the post at once instead."""
    with SlowProxy(mastodon.url, "/api/v1/statuses", delay=2.0) as proxy:
        outbox = make_outbox([masto(proxy.url)])
        first = outbox.article("Cluj and Rawabi sign a partnership")
        story = story_of(outbox, first)
        [share_id] = plan_shares(outbox.rt, first)
        arrived: list[int] = []

        def arrive_while_posting() -> None:
            deadline = time.monotonic() + 30
            while not proxy.posts and time.monotonic() < deadline:
                time.sleep(0.02)
            # Ready now (the process stage sets changed_at when an article becomes ready).
            second = outbox.article(
                "Rawabi hub and Cluj cluster join forces", source="harbour", changed_at=utcnow()
            )
            join(outbox, story, second)
            arrived.append(second)
            assert plan_shares(outbox.rt, second) == []  # the share is being sent

        thread = threading.Thread(target=arrive_while_posting)
        thread.start()
        assert deliver_share(outbox.rt, share_id) == "sent"
        thread.join(30)
        [second] = arrived
        row = outbox.share(share_id)
        assert row.remote_id is not None and row.text is not None
        assert row.text.endswith(f"{ALSO_REPORTED}harbour {url_of(outbox, second)}")
        assert mastodon.source_text(row.remote_id) == row.text
        assert len(history(mastodon, row.remote_id)) == 2
        assert len(proxy.posts) == 1


def test_a_claim_that_loses_its_chosen_version_to_another_share_keeps_its_own(
    make_outbox: Callable[..., Outbox], receiver: Receiver, database_url: str
) -> None:
    """Between choosing the preferred version and moving the share to it, another worker gave that
    version a share of its own: the move breaks the unique (article, endpoint) index, and the claim
    goes ahead with the version it was planned for."""
    outbox = make_outbox([hook(receiver.url, story_window=0)], sources=PRIORITY_SOURCES)
    partner = outbox.article("A partner's write-up", source="valley")
    story = story_of(outbox, partner)
    [share_id] = plan_shares(outbox.rt, partner)
    own = outbox.article("The hub's own write-up", source="harbour")
    join(outbox, story, own)
    engine = get_engine(database_url)
    raced: list[int] = []

    def another_worker_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not raced and statement.lstrip().upper().startswith("UPDATE SHARES") and "article_id" in statement:
            with engine.begin() as other:
                other.execute(
                    insert(Share).values(
                        article_id=own, endpoint="hook", status="failed", attempts=0, created_at=utcnow()
                    )
                )
            raced.append(own)

    event.listen(engine, "before_cursor_execute", another_worker_first)
    try:
        assert deliver_share(outbox.rt, share_id) == "sent"
    finally:
        event.remove(engine, "before_cursor_execute", another_worker_first)
    assert raced == [own]
    assert outbox.share(share_id).article_id == partner
    assert urls(receiver) == [url_of(outbox, partner)]


@pytest.mark.usefixtures("masto_env")
def test_an_edit_the_network_cannot_take_is_tried_again_then_given_up(
    make_outbox: Callable[..., Outbox], mastodon: MastodonPeer
) -> None:
    outbox = make_outbox([masto(mastodon.url)])
    first = outbox.article("Cluj and Rawabi sign a partnership")
    story = story_of(outbox, first)
    [share_id] = plan_shares(outbox.rt, first)
    assert deliver_share(outbox.rt, share_id) == "sent"
    posted = outbox.share(share_id).text
    second = outbox.article("Rawabi hub and Cluj cluster join forces", source="harbour", changed_at=utcnow())
    join(outbox, story, second)
    mastodon.add_fault(
        {"type": "status", "status": 503}, path="/api/v1/statuses/*", methods=("PUT",), count=None
    )
    with pytest.raises(Deferred, match="editing the story's post") as info:
        deliver_share(outbox.rt, share_id)
    assert info.value.seconds == 60.0
    # An hour after the version arrived it waits half an hour; a day after, it gives up.
    with outbox.rt.session() as session:
        session.execute(
            update(Article).where(Article.id == second).values(changed_at=utcnow() - timedelta(hours=1))
        )
    with pytest.raises(Deferred) as info:
        deliver_share(outbox.rt, share_id)
    assert 1800 <= info.value.seconds <= 1810
    with outbox.rt.session() as session:
        session.execute(
            update(Article).where(Article.id == second).values(changed_at=utcnow() - timedelta(days=2))
        )
    assert deliver_share(outbox.rt, share_id) == "sent"
    row = outbox.share(share_id)
    assert row.text == posted and row.remote_id is not None
    assert len(history(mastodon, row.remote_id)) == 1
