"""Assigning ready articles to stories, on SQLite and PostgreSQL: candidates by key, the matcher's
decision, joining or founding, the main version, idempotence, the split rule and concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.stories.conftest import DEV, DEV_ARTICLES, StoryDB, story_config
from worker.store.models import Article, Share, ShareSkip, Story, StoryFeatures, StoryKey, StorySplit
from worker.stories import stored
from worker.stories.assign import assign_article, candidates, unassigned
from worker.stories.evaluate import DevSet
from worker.stories.features import extract
from worker.stories.keys import keys_of
from worker.stories.match import Matcher

PARTNERSHIP = ["s01-a", "s01-b", "s01-d", "s01-e", "s01-f"]  # en, en, en (the hub's own), ro, ar
OTHERS = ["n05", "n05-b", "n06"]  # same cluster and week, another partner; the hub's other news


def by_published(dev_ids: list[str]) -> list[str]:
    return sorted(dev_ids, key=lambda k: datetime.fromisoformat(DEV_ARTICLES[k]["published"]))


def test_every_same_story_pair_the_matcher_accepts_shares_a_key() -> None:
    """Candidate recall on the dev set: a pair that shares no key is never compared."""
    dev = DevSet.load(DEV)
    matcher = Matcher()
    features = [extract(a) for a in dev.articles]
    keys = [set(keys_of(f)) for f in features]
    accepted = [
        (i, j)
        for i, j in dev.pairs()
        if dev.same(i, j) and matcher.decide_features(features[i], features[j]).same
    ]
    cross = [p for p in accepted if dev.cross_language(*p)]
    missed = [(dev.articles[i]["id"], dev.articles[j]["id"]) for i, j in accepted if not keys[i] & keys[j]]
    assert len(accepted) > 80 and len(cross) > 60  # the set still holds what this measures
    assert missed == []


def test_the_partnership_becomes_one_story_with_the_hub_as_main(story_db: StoryDB) -> None:
    ids = {k: story_db.add(k) for k in by_published(PARTNERSHIP + OTHERS)}
    placed = {k: assign_article(story_db.rt, i) for k, i in ids.items()}
    story = {k: p.story_id or 0 for k, p in placed.items()}
    assert len({story[k] for k in PARTNERSHIP}) == 1  # English, Romanian and Arabic write-ups: one story
    assert story["n05"] == story["n05-b"]  # the Lyon agreement, in Romanian and in English
    assert len({story["s01-a"], story["n05"], story["n06"]}) == 3
    first = by_published(PARTNERSHIP)[0]
    assert not placed[first].joined and all(placed[k].joined for k in PARTNERSHIP if k != first)
    roles = dict(story_db.stories()[story["s01-a"]])
    assert roles[ids["s01-d"]] == "main"  # clujit-cluster has the highest priority
    assert list(roles.values()).count("main") == 1
    row = story_db.story(story["s01-a"])
    assert row is not None
    assert row.title == DEV_ARTICLES["s01-d"]["title"]
    # Founded by the first version: its entry id is the one that article's entry had.
    assert row.entry_key == f"articles/{ids[first]}"
    assert row.entry_day == story_db.article(ids[first]).first_seen_at.date()
    assert row.first_published == min(story_db.article(ids[k]).first_seen_at for k in PARTNERSHIP)
    assert placed["s01-f"].feeds == ["all"]


def test_language_preference_picks_the_main_version_after_priority(
    make_story_db: Callable[..., StoryDB],
) -> None:
    db = make_story_db(story_config(languages=["ro"]))
    ids = {k: db.add(k, source="technews-demo") for k in by_published(PARTNERSHIP)}
    for article_id in ids.values():
        assign_article(db.rt, article_id)
    assert db.article(ids["s01-e"]).story_role == "main"  # equal priorities: the Romanian one


def test_features_and_embeddings_are_stored_once(story_db: StoryDB) -> None:
    english, romanian = story_db.add("s01-a"), story_db.add("s01-e")
    assign_article(story_db.rt, english)
    placed = assign_article(story_db.rt, romanian)
    assert placed.joined  # cross-language: decided with the model
    with story_db.rt.session() as session:
        rows = {r.article_id: stored.load(r.data) for r in session.scalars(select(StoryFeatures))}
        assert session.scalar(
            select(func.count()).select_from(StoryKey).where(StoryKey.article_id == romanian)
        )
    # Both embeddings were computed for that decision and kept: no article is embedded twice.
    assert rows[english].embedding is not None and rows[romanian].embedding is not None
    assert rows[english].title == DEV_ARTICLES["s01-a"]["title"]


def test_a_redelivered_or_changed_article_keeps_its_story(story_db: StoryDB) -> None:
    first, second = story_db.add("s01-a"), story_db.add("s01-d")
    story = assign_article(story_db.rt, first).story_id
    assert assign_article(story_db.rt, second).story_id == story
    again = assign_article(story_db.rt, second)
    assert (again.story_id, again.joined) == (story, False)
    with story_db.rt.session() as session:
        row = session.get(Article, first)
        assert row is not None
        row.title = "A rewritten title about something else entirely"
        row.text = "Nothing in common with the partnership any more."
    changed = assign_article(story_db.rt, first, changed=True)
    assert changed.story_id == story
    assert story_db.story_of(first) == story
    with story_db.rt.session() as session:
        data = session.scalar(select(StoryFeatures.data).where(StoryFeatures.article_id == first))
        assert data is not None and stored.load(data).title.startswith("A rewritten title")


def test_not_ready_articles_are_left_alone(story_db: StoryDB) -> None:
    pending = story_db.add("s01-a", status="pending")
    assert assign_article(story_db.rt, pending).story_id is None
    assert story_db.story_of(pending) is None
    with pytest.raises(LookupError):
        assign_article(story_db.rt, pending + 1000)


def test_stories_disabled_each_article_founds_its_own(make_story_db: Callable[..., StoryDB]) -> None:
    db = make_story_db(story_config(enabled=False))
    ids = [db.add(k) for k in by_published(PARTNERSHIP)]
    found = [assign_article(db.rt, i).story_id for i in ids]
    assert len(set(found)) == len(ids)
    assert all(db.article(i).story_role == "main" for i in ids)


def test_a_split_article_is_never_a_candidate_of_that_story(story_db: StoryDB) -> None:
    first, second = story_db.add("s01-a"), story_db.add("s01-d")
    story = assign_article(story_db.rt, first).story_id
    assert story is not None
    with story_db.rt.session() as session:
        session.add(StorySplit(article_id=second, story_id=story))
    placed = assign_article(story_db.rt, second)
    assert placed.story_id != story and not placed.joined


def test_candidates_are_looked_up_within_the_window_only(story_db: StoryDB) -> None:
    early = story_db.add("s04-a")  # no event date stated: its publication day only
    assign_article(story_db.rt, early)
    published = story_db.article(early).published
    assert published is not None
    late = story_db.add(
        "s04-b", published=published + timedelta(days=4), first_seen_at=published + timedelta(days=4)
    )
    placed = assign_article(story_db.rt, late)
    assert (placed.joined, placed.candidates) == (False, 0)  # the same story, but four days later
    with story_db.rt.session() as session:
        keys = list(session.scalars(select(StoryKey.key).where(StoryKey.article_id == late)))
        assert candidates(
            session, keys, (published.date() - datetime(1970, 1, 1).date()).days, 3.0, late
        ) == [early]


def test_a_late_write_up_stating_the_event_day_is_a_candidate_from_that_day(story_db: StoryDB) -> None:
    """The lookup also reads the days an article states (s01-a and s01-d date the event "end of January")."""
    early = story_db.add("s01-a")
    assign_article(story_db.rt, early)
    published = story_db.article(early).published
    assert published is not None
    late = story_db.add(
        "s01-d", published=published + timedelta(days=20), first_seen_at=published + timedelta(days=20)
    )
    placed = assign_article(story_db.rt, late)
    assert placed.candidates == 1  # found through January's days, 20 days after its publication


def test_an_article_matching_two_stories_makes_them_one_whatever_the_order(story_db: StoryDB) -> None:
    """The 28 January release (s01-c) and the 4 March write-up (s01-b) match neither each other nor
    anything else first: two stories. The 6 March write-up (s01-a) dates the event and quotes the
    release: it matches both, and the two stories become one, under the older."""
    release, bridge_news, dated = story_db.add("s01-c"), story_db.add("s01-b"), story_db.add("s01-a")
    first = assign_article(story_db.rt, release).story_id
    second = assign_article(story_db.rt, bridge_news).story_id
    assert first is not None and second is not None and first != second
    placed = assign_article(story_db.rt, dated)
    assert placed.joined and placed.story_id == min(first, second)
    assert {story_db.article(i).story_id for i in (release, bridge_news, dated)} == {placed.story_id}
    with story_db.rt.session() as session:
        assert session.get(Story, max(first, second)) is None


def test_stories_made_one_keep_one_unsent_share_per_endpoint(story_db: StoryDB) -> None:
    release, bridge_news, dated = story_db.add("s01-c"), story_db.add("s01-b"), story_db.add("s01-a")
    first = assign_article(story_db.rt, release).story_id
    second = assign_article(story_db.rt, bridge_news).story_id
    assert first is not None and second is not None
    with story_db.rt.session() as session:
        # Both stories planned their post on "archive"; only the second planned one on "hook".
        session.add(Share(article_id=release, endpoint="archive", story_id=first))
        session.add(Share(article_id=bridge_news, endpoint="archive", story_id=second))
        session.add(Share(article_id=bridge_news, endpoint="hook", story_id=second))
    placed = assign_article(story_db.rt, dated)
    with story_db.rt.session() as session:
        shares = {(s.endpoint, s.story_id, s.article_id) for s in session.scalars(select(Share))}
        skips = {(k.article_id, k.endpoint, k.reason) for k in session.scalars(select(ShareSkip))}
    keep = min(first, second)
    assert placed.story_id == keep
    assert shares == {("archive", keep, release), ("hook", keep, bridge_news)}
    assert skips == {(bridge_news, "archive", "same_story")}


def test_unassigned_lists_ready_articles_without_a_story(story_db: StoryDB) -> None:
    old = datetime(2019, 3, 1, tzinfo=UTC)
    ready = story_db.add("s01-a", changed_at=old)
    story_db.add("s01-b", status="pending", changed_at=old)
    recent = story_db.add("s01-d", changed_at=datetime.now(UTC))
    with story_db.rt.session() as session:
        assert unassigned(session, datetime.now(UTC) - timedelta(seconds=10)) == [ready]
    assign_article(story_db.rt, ready)
    with story_db.rt.session() as session:
        assert unassigned(session, datetime.now(UTC) + timedelta(seconds=1)) == [recent]


@pytest.mark.parametrize("rounds", [4])
def test_versions_processed_at_the_same_moment_found_one_story(story_db: StoryDB, rounds: int) -> None:
    """Two workers assigning two versions of one story at once: one story, whichever commits first."""
    pairs = [("s01-a", "s01-d"), ("n05", "n05-b"), ("s02-a", "s02-b"), ("s03-a", "s03-b")][:rounds]
    for a, b in pairs:
        ids = [story_db.add(a), story_db.add(b)]
        start = threading.Barrier(2)
        found: dict[int, int | None] = {}
        errors: list[BaseException] = []

        def run(article_id: int) -> None:
            try:
                start.wait(timeout=30)
                found[article_id] = assign_article(story_db.rt, article_id).story_id
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert found[ids[0]] is not None and found[ids[0]] == found[ids[1]], (a, b)
    with story_db.rt.session() as session:
        assert session.scalar(select(func.count()).select_from(Story)) == len(pairs)
