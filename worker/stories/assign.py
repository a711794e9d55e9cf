"""Put a ready article in its story: find candidates by key, let the matcher decide, join or found one.

How (one article, :func:`assign_article`):

1. Its features (:func:`~worker.stories.features.extract` of the fields `syndicate scrape` prints) and
   its candidate keys (:mod:`worker.stories.keys`).
2. Outside any lock: the candidates are the ready, assigned articles sharing the most keys with it on
   the days within ``stories.window_days`` of its publication (at most :data:`MAX_CANDIDATES`; never
   an article of a story it was split from). The :class:`~worker.stories.match.Matcher` decides each
   pair, from the candidates' stored features; an embedding it needs is computed here, once per
   article, and stored with the features.
3. Under the story lock (:func:`story_lock`), a short step: the candidates are looked up again (a
   version processed meanwhile by another worker is found now; only such newcomers are decided
   here), the article joins the story of the best-scoring candidate the matcher calls the same, or
   founds a new one; its features and keys are written; the story's main version is chosen again
   (:func:`~worker.stories.choice.version_order`).

``stories.enabled: false``: every article founds its own story (the same path, without matching).
An article that already has a story keeps it (a redelivered task changes nothing; a re-processed
article with changed content gets fresh features and keys, and its story's title and main version
are chosen again).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql import Executable

from config import Config
from worker.errors import MatchInputError
from worker.runtime import Runtime
from worker.store.models import (
    Article,
    Share,
    ShareSkip,
    Story,
    StoryFeatures,
    StoryKey,
    StorySplit,
    utcnow,
)
from worker.store.queries import affected_feeds
from worker.stories import stored
from worker.stories.choice import version_order
from worker.stories.features import Features, extract
from worker.stories.keys import day_number, day_spans, event_days, keys_of, rows_of
from worker.stories.match import Decision, MatchConfig, Matcher

log = logging.getLogger(__name__)

# Candidates decided per new article: those sharing the most keys. A story's versions share many keys
# with each other; 24 leaves room for several busy stories on the same names in one window.
MAX_CANDIDATES = 24
# PostgreSQL advisory lock id of the story step ("STORY" in ASCII).
LOCK_ID = 0x53544F5259
MAIN = "main"
VERSION = "version"


@dataclass(frozen=True)
class Placed:
    """Where :func:`assign_article` put an article, and the merged feeds to render again."""

    article_id: int
    story_id: int | None  # None: the article is not ready (nothing done)
    joined: bool = False  # joined an existing story (False: founded one, or already had one)
    score: float | None = None  # the matcher's score against the candidate it joined
    candidates: int = 0  # candidates decided
    feeds: list[str] = field(default_factory=list)


def match_fields(article: Article) -> dict[str, Any]:
    """The stored article as the matcher reads it: the fields `syndicate scrape` prints.

    ``content_text`` is the stored body text (:attr:`Article.text`, as ``NormalizedArticle.to_dict``
    names it); an undated article is dated by when it was first seen, so the matcher's date window
    holds for it too.
    """
    when = article.published or article.first_seen_at
    return {
        "url": article.url,
        "title": article.title or "",
        "content_text": article.text or "",
        "published": when.isoformat() if when else None,
        "language": article.language or "",
    }


def article_day(article: Article) -> int:
    """The day an article is indexed under: its publication (else first seen), UTC."""
    return day_number(article.published or article.first_seen_at)


def story_lock(session: Session, first_write: Executable) -> None:
    """Serialise the story step across processes, on both databases, until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: ``first_write`` is the transaction's first
    statement, so it takes the database's one write lock (waiting up to its busy timeout) before
    anything is read; the reads that follow see every story step committed before.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    session.execute(first_write)


def matcher_for(config: Config) -> Matcher:
    """A matcher with the configured window (the embedding model is the process's shared one)."""
    return Matcher(MatchConfig(window_days=config.stories.window_days))


def _features(fields: dict[str, Any]) -> Features | None:
    try:
        return extract(fields)
    except MatchInputError:  # neither title nor text: nothing to match on; it stays a story of its own
        return None


def source_priority(config: Config, name: str) -> int:
    """The configured priority of source ``name`` (0 for a source no longer configured)."""
    try:
        return config.source(name).priority
    except KeyError:
        return 0


def split_from(session: Session, article_id: int) -> list[int]:
    """The stories ``article_id`` was split out of (it never rejoins them)."""
    return list(session.scalars(select(StorySplit.story_id).where(StorySplit.article_id == article_id)))


def candidates(
    session: Session,
    keys: Sequence[str],
    day: int | Sequence[int],
    window_days: float,
    exclude_article: int,
    exclude_stories: Sequence[int] = (),
    limit: int = MAX_CANDIDATES,
) -> list[int]:
    """Ready articles in a story that share keys with these on the days around ``day`` (one day, or
    the publication day and the event days the article states), most shared first (one indexed query
    on ``story_keys``: the archive is never scanned)."""
    if not keys:
        return []
    days = [day] if isinstance(day, int) else list(day)
    spans = day_spans(days, window_days)
    shared = func.count(StoryKey.key.distinct()).label("shared")
    query = (
        select(StoryKey.article_id, shared)
        .join(Article, Article.id == StoryKey.article_id)
        .where(
            StoryKey.key.in_(list(keys)),
            or_(*(StoryKey.day.between(low, high) for low, high in spans)),
            StoryKey.article_id != exclude_article,
            Article.status == "ready",
            Article.story_id.is_not(None),
        )
        .group_by(StoryKey.article_id)
        .order_by(shared.desc(), StoryKey.article_id.desc())
        .limit(limit)
    )
    if exclude_stories:
        query = query.where(Article.story_id.not_in(list(exclude_stories)))
    return [row[0] for row in session.execute(query)]


class _Loaded:
    """Candidates' features read from ``story_features`` (re-extracted when missing or outdated)."""

    def __init__(self) -> None:
        self.features: dict[int, Features | None] = {}
        self.unsaved: set[int] = set()  # extracted anew, or embedded since: to write back

    def load(self, session: Session, ids: Iterable[int]) -> None:
        wanted = [i for i in ids if i not in self.features]
        if not wanted:
            return
        rows = session.execute(
            select(StoryFeatures.article_id, StoryFeatures.version, StoryFeatures.data).where(
                StoryFeatures.article_id.in_(wanted)
            )
        )
        for article_id, version, data in rows:
            if version == stored.VERSION:
                try:
                    self.features[article_id] = stored.load(data)
                except ValueError:
                    log.warning("story features of article %s unreadable; extracted again", article_id)
        missing = [i for i in wanted if i not in self.features]
        if missing:
            for article in session.scalars(select(Article).where(Article.id.in_(missing))):
                self.features[article.id] = _features(match_fields(article))
                self.unsaved.add(article.id)

    def decide(
        self, matcher: Matcher, mine: Features, ids: Iterable[int], known: dict[int, Decision]
    ) -> None:
        for article_id in ids:
            theirs = self.features.get(article_id)
            if article_id in known or theirs is None:
                continue
            had_embedding = theirs.embedding is not None
            known[article_id] = matcher.decide_features(mine, theirs)
            if not had_embedding and theirs.embedding is not None:
                self.unsaved.add(article_id)

    def save(self, session: Session) -> None:
        for article_id in sorted(self.unsaved):
            found = self.features.get(article_id)
            if found is not None:
                write_features(session, article_id, found, keys=None)


def write_features(session: Session, article_id: int, features: Features | None, keys: int | None) -> None:
    """Store an article's features (``keys``: also replace its candidate keys, under that day)."""
    if features is None:
        session.execute(delete(StoryFeatures).where(StoryFeatures.article_id == article_id))
    else:
        session.merge(
            StoryFeatures(article_id=article_id, version=stored.VERSION, data=stored.dump(features))
        )
    if keys is not None:
        session.execute(delete(StoryKey).where(StoryKey.article_id == article_id))
        if features is not None:
            session.add_all(
                StoryKey(key=k, day=d, article_id=article_id)
                for k, d in dict.fromkeys(rows_of(features, keys))
            )


def assign_article(rt: Runtime, article_id: int, changed: bool = False) -> Placed:
    """Put the ready article ``article_id`` in a story (see the module docstring); commits.

    ``changed``: the article was re-processed with new content (it keeps its story; its features,
    keys, and its story's main version are brought up to date). LookupError if there is no such
    article; an article that is not ready is left alone.
    """
    config = rt.config
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise LookupError(f"no article with id {article_id}")
        if article.status != "ready":
            return Placed(article_id, None)
        if article.story_id is not None and not changed:
            return Placed(article_id, article.story_id)
        fields, day, held = match_fields(article), article_day(article), article.story_id
        excluded = split_from(session, article_id)
    mine = _features(fields)
    if held is not None:
        return _refresh_member(rt, article_id, mine, day)
    matching = config.stories.enabled and mine is not None
    matcher = matcher_for(config)
    decisions: dict[int, Decision] = {}
    loaded = _Loaded()
    keys = keys_of(mine) if mine is not None else []
    days = [day, *event_days(mine, day)] if mine is not None else [day]
    if matching:
        assert mine is not None
        with rt.session() as session:
            ids = candidates(session, keys, days, config.stories.window_days, article_id, excluded)
            loaded.load(session, ids)
        loaded.decide(matcher, mine, ids, decisions)  # the costly part (the model), outside the lock
    with rt.session() as session:
        story_lock(session, delete(StoryKey).where(StoryKey.article_id == article_id))
        article = session.get(Article, article_id)
        if article is None or article.status != "ready" or article.story_id is not None:
            return Placed(article_id, article.story_id if article is not None else None)
        best: tuple[float, int] | None = None
        same: dict[int, float] = {}  # story -> best score of its versions the article matched
        if matching:
            assert mine is not None
            excluded = split_from(session, article_id)
            ids = candidates(session, keys, days, config.stories.window_days, article_id, excluded)
            loaded.load(session, ids)
            loaded.decide(matcher, mine, ids, decisions)  # only versions that arrived meanwhile
            loaded.save(session)
            rows = session.execute(select(Article.id, Article.story_id).where(Article.id.in_(ids)))
            stories = {row[0]: row[1] for row in rows}
            for candidate in ids:
                decision = decisions.get(candidate)
                story_id = stories.get(candidate)
                if decision is not None and decision.same and story_id is not None:
                    if best is None or (decision.score, -story_id) > (best[0], -best[1]):
                        best = (decision.score, story_id)
                    same[story_id] = max(same.get(story_id, 0.0), decision.score)
        write_features(session, article_id, mine, keys=day)
        bridged: list[int] = []
        if best is not None:
            # The article reports the story of every candidate it matched: when those are several
            # stories (versions that did not match each other, e.g. a press release and a write-up
            # weeks later, with this one dating the event), they are one story now, kept under the
            # oldest; operators' splits between them still hold.
            keep = min(same)
            story = session.get(Story, keep)
            assert story is not None
            article.story_id, article.story_role = story.id, VERSION
            session.flush()
            for other in sorted(same):
                if other != keep and not split_between(session, keep, other):
                    bridged.append(other)
            feeds_before = story_feeds(session, config, bridged)
            for other in bridged:
                absorb(session, keep, other)
            story = session.get(Story, keep)
            assert story is not None
        else:
            story = found_story(session, article)
            feeds_before = []
        session.flush()
        refresh_story(session, config, story)
        feeds = list(dict.fromkeys([*story_feeds(session, config, [story.id]), *feeds_before]))
        placed = Placed(
            article_id,
            story.id,
            joined=best is not None,
            score=best[0] if best is not None else None,
            candidates=len(decisions),
            feeds=feeds,
        )
    log.info(
        "article %s %s story %s (%d candidates)%s",
        article_id,
        "joined" if placed.joined else "founded",
        placed.story_id,
        placed.candidates,
        f"; stories {bridged} merged into it" if bridged else "",
    )
    return placed


def _refresh_member(rt: Runtime, article_id: int, mine: Features | None, day: int) -> Placed:
    """A re-processed article keeps its story: new features and keys, its story chosen again."""
    with rt.session() as session:
        story_lock(session, delete(StoryKey).where(StoryKey.article_id == article_id))
        article = session.get(Article, article_id)
        if article is None or article.story_id is None:
            return Placed(article_id, None)
        write_features(session, article_id, mine, keys=day)
        story = session.get(Story, article.story_id)
        assert story is not None
        refresh_story(session, rt.config, story)
        return Placed(article_id, story.id, feeds=story_feeds(session, rt.config, [story.id]))


def split_between(session: Session, one: int, other: int) -> bool:
    """Was any version of either story split out of the other (an operator said they differ)?"""
    members_of = select(Article.id).where(Article.story_id.in_([one, other]))
    found = session.scalar(
        select(func.count())
        .select_from(StorySplit)
        .where(StorySplit.story_id.in_([one, other]), StorySplit.article_id.in_(members_of))
    )
    return bool(found)


def absorb(session: Session, keep: int, other: int) -> None:
    """Move every version of story ``other`` into ``keep`` and delete ``other`` (in this transaction).

    A split recorded against ``other`` now holds against ``keep``; one between the two is undone.
    Shares of ``other`` move to ``keep`` for the endpoints ``keep`` has none on, so the one post per
    story rule still sees what was posted; on the others, a share not yet on its way is dropped (its
    article skipped as ``same_story``: ``keep``'s share is the story's post there) and one already
    claimed or sent stays, with its article and no story.
    """
    moving = list(session.scalars(select(Article.id).where(Article.story_id == other)))
    staying = list(session.scalars(select(Article.id).where(Article.story_id == keep)))
    session.execute(
        delete(StorySplit).where(
            ((StorySplit.story_id == keep) & StorySplit.article_id.in_(moving))
            | ((StorySplit.story_id == other) & StorySplit.article_id.in_(staying))
        )
    )
    held = set(session.scalars(select(StorySplit.article_id).where(StorySplit.story_id == keep)))
    for article_id in session.scalars(select(StorySplit.article_id).where(StorySplit.story_id == other)):
        if article_id not in held:
            session.add(StorySplit(article_id=article_id, story_id=keep))
    planned = set(session.scalars(select(Share.endpoint).where(Share.story_id == keep)))
    for share in session.scalars(select(Share).where(Share.story_id == other)):
        if share.endpoint not in planned:
            share.story_id = keep
        elif share.status == "pending" and share.claimed_at is None and share.sent_at is None:
            # Not yet on its way: ``keep``'s share is the story's one post on that endpoint.
            skipped = session.scalar(
                select(ShareSkip.id).where(
                    ShareSkip.article_id == share.article_id, ShareSkip.endpoint == share.endpoint
                )
            )
            if skipped is None:
                session.add(
                    ShareSkip(article_id=share.article_id, endpoint=share.endpoint, reason="same_story")
                )
            session.delete(share)
    session.flush()
    session.execute(
        update(Article).where(Article.story_id == other).values(story_id=keep, story_role=VERSION)
    )
    session.flush()
    session.execute(delete(Story).where(Story.id == other))
    session.expire_all()  # the bulk updates above: read the members anew


def _day_of(when: datetime) -> date:
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)).date()


def found_story(session: Session, article: Article, entry_key: str | None = None) -> Story:
    """A new story with ``article`` as its only (main) version.

    Its entry id is the one the article's own entry has (``articles/<id>`` of its first-seen day), so
    founding a story changes no entry id; when that key is taken (the article founded a story it later
    left) or ``entry_key == "stories"``, the story is keyed by its own id (``stories/<id>``) of today.
    """
    key = f"articles/{article.id}"
    taken = entry_key == "stories" or session.scalar(select(Story.id).where(Story.entry_key == key))
    if taken:
        story = Story(entry_key=f"pending/{uuid.uuid4().hex}", entry_day=utcnow().date())
    else:
        story = Story(entry_key=key, entry_day=_day_of(article.first_seen_at))
    session.add(story)
    session.flush()
    if taken:
        story.entry_key = f"stories/{story.id}"
    article.story_id, article.story_role = story.id, MAIN
    return story


def members(session: Session, story_id: int) -> list[Article]:
    """The articles of a story, with their sources."""
    return list(
        session.scalars(
            select(Article)
            .options(joinedload(Article.source))
            .where(Article.story_id == story_id)
            .order_by(Article.id)
        )
    )


def ranked(config: Config, versions: Iterable[Article]) -> list[Article]:
    """``versions`` best first (the main version rule, :func:`~worker.stories.choice.version_order`)."""
    languages = config.stories.languages
    return sorted(versions, key=lambda a: version_order(a, source_priority(config, a.source.name), languages))


def refresh_story(session: Session, config: Config, story: Story) -> None:
    """Choose the story's main version again (among its ready versions) and update its title and dates."""
    versions = members(session, story.id)
    if not versions:
        return
    ready = [a for a in versions if a.status == "ready"]
    order = ranked(config, ready or versions)
    main = order[0]
    for article in versions:
        article.story_role = MAIN if article.id == main.id else VERSION
    story.title = main.title
    story.first_published = min(a.published or a.first_seen_at for a in versions)
    story.updated_at = utcnow()


def story_feeds(session: Session, config: Config, story_ids: Iterable[int]) -> list[str]:
    """The feeds any article of these stories is in (render them again after the stories changed)."""
    found: dict[str, None] = {}
    for story_id in story_ids:
        for article in members(session, story_id):
            found.update(dict.fromkeys(affected_feeds(config, article)))
    return list(found)


def unassigned(session: Session, before: datetime, limit: int = 500) -> list[int]:
    """Ready articles without a story that became ready before ``before`` (a worker died between the
    two steps), oldest first: the sweep assigns them."""
    return list(
        session.scalars(
            select(Article.id)
            .where(
                Article.status == "ready",
                Article.story_id.is_(None),
                func.coalesce(Article.changed_at, Article.first_seen_at) < before,
            )
            .order_by(Article.id)
            .limit(limit)
        )
    )
