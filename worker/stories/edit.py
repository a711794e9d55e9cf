"""Operators correct the matcher: merge two stories, split a version out of its story.

Both run under the story lock (:func:`~worker.stories.assign.story_lock`, so no article is being
assigned to a story as it changes), commit, and return the merged feeds to render again; the caller
schedules them (``worker.tasks.schedule_renders``).

Entry ids never change for a story that goes on: a merge keeps the first story's ``entry_key``
(the second story's entry leaves the feeds, its versions are now "also reported by" of the first);
a split article founds a new story keyed ``stories/<its id>``, even when it founded the story it
leaves: that story keeps its ``articles/<founder id>`` key, since it is the one subscribers and
endpoints already know (its posts stay its posts), and only its main version may change. The split
is recorded (``story_splits``) so that the matcher never joins that article to that story again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from worker.errors import StoryChangeError
from worker.runtime import Runtime
from worker.store.models import Article, Story, StorySplit, utcnow
from worker.stories.assign import absorb, found_story, refresh_story, story_feeds, story_lock


@dataclass(frozen=True)
class Changed:
    """The story that goes on (merge) or was founded (split), and the feeds to render again."""

    story_id: int
    feeds: list[str] = field(default_factory=list)


def merge(rt: Runtime, keep: int, other: int) -> Changed:
    """Move every version of story ``other`` into story ``keep`` and delete ``other``.

    ``keep`` keeps its entry id; its main version is chosen again among all versions. A split
    recorded against ``other`` now holds against ``keep``; one between the two stories is undone (the
    operator says they are one). Shares of ``other`` move to ``keep`` for the endpoints ``keep`` has
    none on, so the one-post-per-story rule still sees what was posted. LookupError for an unknown
    story, :class:`StoryChangeError` for a story merged with itself.
    """
    if keep == other:
        raise StoryChangeError(f"story {keep} cannot be merged with itself")
    with rt.session() as session:
        story_lock(session, update(Story).where(Story.id.in_([keep, other])).values(updated_at=utcnow()))
        for story_id in (keep, other):
            if session.get(Story, story_id) is None:
                raise LookupError(f"no story with id {story_id}")
        absorb(session, keep, other)
        story = session.get(Story, keep)
        assert story is not None
        refresh_story(session, rt.config, story)
        return Changed(keep, story_feeds(session, rt.config, [keep]))


def split(rt: Runtime, article_id: int) -> Changed:
    """Take article ``article_id`` out of its story into a new story of its own (``stories/<id>``);
    it never rejoins the story it left. LookupError for an unknown article,
    :class:`StoryChangeError` for an article in no story or the only version of its story."""
    with rt.session() as session:
        story_lock(
            session, update(Article).where(Article.id == article_id).values(story_role=Article.story_role)
        )
        article = session.get(Article, article_id)
        if article is None:
            raise LookupError(f"no article with id {article_id}")
        old_id = article.story_id
        if old_id is None:
            raise StoryChangeError(f"article {article_id} is in no story (is it ready?)")
        others = session.scalar(
            select(func.count())
            .select_from(Article)
            .where(Article.story_id == old_id, Article.id != article_id)
        )
        if not others:
            raise StoryChangeError(
                f"article {article_id} is the only version of story {old_id}: nothing to split"
            )
        if session.get(StorySplit, (article_id, old_id)) is None:
            session.add(StorySplit(article_id=article_id, story_id=old_id))
        story = found_story(session, article, entry_key="stories")
        session.flush()
        old = session.get(Story, old_id)
        assert old is not None
        refresh_story(session, rt.config, old)
        refresh_story(session, rt.config, story)
        return Changed(story.id, story_feeds(session, rt.config, [old_id, story.id]))
