"""Operators' merge and split, on SQLite and PostgreSQL: entry ids kept, main version chosen again, a
split article never rejoins the story it left."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.stories.conftest import StoryDB
from worker.errors import StoryChangeError
from worker.store.models import Share, Story, StorySplit
from worker.stories.assign import assign_article
from worker.stories.edit import merge, split


def test_merge_moves_the_versions_and_keeps_the_first_entry(story_db: StoryDB) -> None:
    # The matcher keeps these apart (another partner, the same week): an operator knows better.
    partnership, lyon = story_db.add("s01-a"), story_db.add("n05", source="clujit-cluster")
    a = assign_article(story_db.rt, partnership).story_id
    b = assign_article(story_db.rt, lyon).story_id
    assert a is not None and b is not None and a != b
    entry = story_db.story(a)
    assert entry is not None
    with story_db.rt.session() as session:
        session.add(Share(article_id=lyon, endpoint="hook", story_id=b, status="sent"))
    changed = merge(story_db.rt, a, b)
    assert changed.story_id == a and changed.feeds == ["all"]
    assert story_db.story(b) is None
    kept = story_db.story(a)
    assert kept is not None and (kept.entry_key, kept.entry_day) == (entry.entry_key, entry.entry_day)
    roles = dict(story_db.stories()[a])
    assert roles == {partnership: "version", lyon: "main"}  # clujit-cluster has the priority
    assert kept.title == story_db.article(lyon).title
    with story_db.rt.session() as session:
        assert session.scalar(select(Share.story_id)) == a  # what was posted for b counts for a


def test_merge_refuses_unknown_or_identical_stories(story_db: StoryDB) -> None:
    a = assign_article(story_db.rt, story_db.add("s01-a")).story_id
    assert a is not None
    with pytest.raises(LookupError, match="no story with id 999"):
        merge(story_db.rt, a, 999)
    with pytest.raises(StoryChangeError):
        merge(story_db.rt, a, a)
    assert story_db.story(a) is not None


def test_split_founds_a_story_that_never_rejoins(story_db: StoryDB) -> None:
    founder, version, late = story_db.add("s01-a"), story_db.add("s01-d"), story_db.add("s01-b")
    story = assign_article(story_db.rt, founder).story_id
    assert story is not None
    assert assign_article(story_db.rt, version).story_id == story
    changed = split(story_db.rt, version)
    assert changed.story_id != story and changed.feeds == ["all"]
    new = story_db.story(changed.story_id)
    assert new is not None and new.entry_key == f"stories/{new.id}"
    assert story_db.article(version).story_id == new.id and story_db.article(version).story_role == "main"
    assert story_db.article(founder).story_role == "main"  # the one version left is main again
    # A version arriving later joins one of the two stories, but the split article never goes back.
    assign_article(story_db.rt, late)
    assert story_db.story_of(version) == new.id
    with story_db.rt.session() as session:
        assert session.get(StorySplit, (version, story)) is not None
    # Merging them again is the operator's word: the split is undone.
    merge(story_db.rt, story, new.id)
    with story_db.rt.session() as session:
        assert session.scalars(select(StorySplit)).all() == []


def test_splitting_the_founder_keeps_the_story_entry(story_db: StoryDB) -> None:
    founder, version = story_db.add("s01-a"), story_db.add("s01-d")
    story = assign_article(story_db.rt, founder).story_id
    assert story is not None and assign_article(story_db.rt, version).story_id == story
    changed = split(story_db.rt, founder)
    kept = story_db.story(story)
    assert kept is not None and kept.entry_key == f"articles/{founder}"  # the story subscribers know
    assert story_db.article(version).story_role == "main"
    new = story_db.story(changed.story_id)
    assert new is not None and new.entry_key == f"stories/{new.id}"
    with story_db.rt.session() as session:
        assert len(session.scalars(select(Story)).all()) == 2


def test_split_refuses_unknown_lonely_or_storyless_articles(story_db: StoryDB) -> None:
    alone = story_db.add("s01-a")
    with pytest.raises(StoryChangeError, match="in no story"):
        split(story_db.rt, alone)
    assign_article(story_db.rt, alone)
    with pytest.raises(StoryChangeError, match="only version"):
        split(story_db.rt, alone)
    with pytest.raises(LookupError, match="no article with id"):
        split(story_db.rt, alone + 100)
