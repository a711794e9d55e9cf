"""What feeds read from the store: feed membership (in SQL and for one article in hand), a merged
feed's stories, archive paging, and the mapping of an article row to its :class:`~feeds.build.FeedItem`.

Pure queries over a session the caller opened (no Runtime, no Redis): the render stage
(:mod:`worker.render`), the process stage and the story assignment share them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, contains_eager, defer

from config import Config, FeedConfig
from config.model import SourceConfig
from feeds.build import EPOCH, FeedItem, RelatedVersion, tag_uri
from worker.store.models import Article, Source, Story, utcnow
from worker.store.routing import article_in_feed, feed_selects, feed_where

# An article whose original is gone (a re-crawl answered 404/410) or was withdrawn: it leaves every
# feed at the next render but keeps its row, so it is not re-created and keeps its place in the
# archive numbering (its archive page shows a hole rather than every later page shifting).
RETRACTED = "retracted"
FEED_STATUSES = ("ready", RETRACTED)


# ---------------------------------------------------------------- stories in feeds

# The role of a story's version that feeds show and endpoints post (the others are "version").
STORY_MAIN = "main"
_Version = aliased(Article, name="story_version")


def merged_feed(feed: FeedConfig) -> bool:
    """Whether ``feed`` lists stories, one entry each, rather than articles.

    Every feed but a per-source one is merged: ``all``, category and tag feeds, and feeds over
    several sources. A per-source feed (``sources`` naming exactly one source) stays one entry per
    article of that source: it is that partner's own feed.
    """
    return len(feed.sources) != 1


def _entry_where(feed: FeedConfig) -> list[Any]:
    """SQL conditions selecting the rows that stand for ``feed``'s entries (status aside).

    In a merged feed: a story's main version, when any ready version of the story (itself included)
    matches the feed's filters, so a story some partner filed under the feed's category is in the
    feed whichever version is its main one, and the entry shows that main version; and an article
    not (yet) in a story, by its own fields. Otherwise the articles the filters select.
    """
    if not merged_feed(feed):
        return feed_where(feed)
    alone = and_(Article.story_id.is_(None), *feed_where(feed))
    main = Article.story_role == STORY_MAIN
    filters = feed_where(feed, _Version)
    if filters:
        versions = exists().where(_Version.story_id == Article.story_id, _Version.status == "ready", *filters)
        main = and_(main, Article.story_id.is_not(None), versions)
    return [or_(alone, main)]


def _entry_query(feed: FeedConfig) -> Select[Article]:
    return (
        select(Article)
        .join(Source)
        .options(contains_eager(Article.source), defer(Article.raw_html), defer(Article.text))
        .where(Article.status == "ready", *_entry_where(feed))
    )


def anchored_entries(session: Session, feed: FeedConfig, ids: Sequence[int]) -> list[int]:
    """The entries (article ids, as :func:`_entry_where` picks them) that ``ids`` of the archive hold
    (some may not be ready: read them with :func:`ready_query`).

    ``ids`` are part of :func:`archive_ids`. In a merged feed a story is held where its first
    version in the feed is (its lowest id among the feed's ready and retracted articles): a version
    joining later, or a new main version, moves nothing, so archive pages keep their place and only
    the story's entry changes. It is shown there while a ready version matches the feed's filters
    (a retracted one keeps the place only). An article without a story is held where it is.
    """
    if not ids:
        return []
    if not merged_feed(feed):
        return list(ids)  # the caller reads the ready ones
    held = set(ids)
    rows = session.execute(select(Article.id, Article.story_id, Article.status).where(Article.id.in_(ids)))
    out: list[int] = []
    story_ids: set[int] = set()
    for article_id, story_id, status in rows:
        if story_id is None:
            if status == "ready":
                out.append(article_id)
        else:
            story_ids.add(story_id)
    stories: dict[int, list[Any]] = {}
    for version in _story_versions(session, story_ids):
        assert version.story_id is not None  # selected by it
        stories.setdefault(version.story_id, []).append(version)
    for members in stories.values():
        in_feed = [v for v in members if v.status in FEED_STATUSES and _version_in_feed(feed, v)]
        if not in_feed or min(v.id for v in in_feed) not in held:
            continue  # held by another page
        if any(v.status == "ready" for v in in_feed):
            out += [v.id for v in members if v.story_role == STORY_MAIN and v.status == "ready"]
    return out


def _story_versions(session: Session, story_ids: Iterable[int]) -> list[Any]:
    """Every article of these stories, whatever its status: the columns feeds need, no bodies.

    Selected by ``story_id`` alone, so the database reads them through ``ix_articles_story_id``
    (SQLite, without statistics, preferred the status index for ``story_id IN (...) AND status``
    and read every ready row: 25 ms at 20,000 articles); callers look at the status. Rows, not
    ORM objects: a render reads a few hundred of them.
    """
    wanted = sorted(set(story_ids))
    if not wanted:
        return []
    query = (
        select(
            Article.id,
            Article.story_id,
            Article.story_role,
            Article.status,
            Article.canonical_url,
            Article.title,
            Article.language,
            Article.published,
            Article.updated,
            Article.changed_at,
            Article.first_seen_at,
            Article.category,
            Article.tags,
            Source.name.label("source_name"),
        )
        .join(Source)
        .where(Article.story_id.in_(wanted))
    )
    return list(session.execute(query))


def _version_in_feed(feed: FeedConfig, version: Any) -> bool:
    """:func:`article_in_feed` for a row of :func:`_story_versions`."""
    return feed_selects(feed, version.source_name, version.category, version.tags)


def _version_updated(article: Any, now: datetime) -> datetime | None:
    """An article's last change as its entry says it (in :func:`feed_item` and in a story's ``updated``)."""
    seen = article.first_seen_at
    return _not_after(article.updated or article.changed_at, article.changed_at or seen, now)


def as_stories(
    session: Session,
    entries: Sequence[tuple[Article, FeedItem]],
    config: Config | None,
    authority: str,
    now: datetime,
) -> list[FeedItem]:
    """Each main version's item as its story's entry; articles without a story stay as they are.

    The entry keeps the main version's title, content, link, dates, image, authors and source, and
    gets: the story's id (``tag_uri(authority, entry_day, entry_key)``: for a story founded by an
    article, that article's own entry id, so it never changes when versions join or the main
    version changes); the other ready versions as :class:`RelatedVersion`s, oldest first; and as
    ``updated`` the latest of the versions' changes and, once it has other versions, the story's
    ``updated_at`` (a join or a new main version moves it). A story with one version thus renders
    as its article did, ``_syndicate.story_id`` in JSON Feed aside.
    """
    story_ids = {article.story_id for article, _ in entries if article.story_id is not None}
    if not story_ids:
        return [item for _, item in entries]
    columns = (Story.id, Story.entry_key, Story.entry_day, Story.created_at, Story.updated_at)
    stories = {row.id: row for row in session.execute(select(*columns).where(Story.id.in_(story_ids)))}
    versions: dict[int, list[Any]] = {}
    ready = [v for v in _story_versions(session, story_ids) if v.status == "ready"]
    for version in sorted(ready, key=lambda v: (v.published or v.first_seen_at, v.id)):
        assert version.story_id is not None  # selected by it
        versions.setdefault(version.story_id, []).append(version)
    out: list[FeedItem] = []
    for article, item in entries:
        story = stories.get(article.story_id) if article.story_id is not None else None
        if story is None:
            out.append(item)
            continue
        others = [v for v in versions.get(story.id, []) if v.id != article.id]
        changes = [item.updated, *(_version_updated(v, now) for v in others)]
        if others:
            changes.append(_not_after(story.updated_at, story.created_at, now))
        known = [c for c in changes if c is not None]
        related = tuple(
            RelatedVersion(
                url=v.canonical_url,
                title=v.title or v.canonical_url,
                source_name=_source_name(config, v.source_name),
                language=v.language,
            )
            for v in others
        )
        out.append(
            dataclasses.replace(
                item,
                id=tag_uri(authority, story.entry_day, story.entry_key),
                updated=max(known) if known else None,
                related=related,
                language=article.language,
                story_id=story.id,
            )
        )
    return out


def _source_name(config: Config | None, name: str) -> str:
    source_config = _source_config(config, name)
    return (source_config.title or source_config.name) if source_config else name


def story_feeds(session: Session, config: Config, story_id: int) -> list[str]:
    """Names of the merged feeds whose entries show story ``story_id`` (re-render these after it
    changes: a version joined or left, the main version changed, a version was edited).

    A merged feed shows the story when any of its versions matches the feed's filters (retracted
    ones count, so the feed a version leaves is named too). Per-source feeds list articles, not
    stories: a story's change leaves their entries as they were (an article's own change names
    them through :func:`affected_feeds`).
    """
    versions = [v for v in _story_versions(session, [story_id]) if v.status in FEED_STATUSES]
    return [
        feed.name
        for feed in config.feeds
        if merged_feed(feed) and any(_version_in_feed(feed, version) for version in versions)
    ]


def with_story_feeds(session: Session, config: Config, article: Article, feeds: list[str]) -> list[str]:
    """``feeds`` and the merged feeds of ``article``'s story: its entry there lists ``article`` too."""
    if article.story_id is None:
        return feeds
    return list(dict.fromkeys([*feeds, *story_feeds(session, config, article.story_id)]))


def affected_feeds(config: Config, article: Article) -> list[str]:
    """Names of the configured feeds ``article`` belongs to (re-render these after it changes)."""
    return [f.name for f in config.feeds if article_in_feed(f, article)]


def entry_id(authority: str, article: Article) -> str:
    """The article's feed entry id: a tag URI from facts that never change once stored.

    ``tag:<public host>,<first_seen_at date>:articles/<id>`` (RFC 4151). The URL is not part of it,
    so a changed canonical link, an edit or a re-crawl keep the entry; only a change of the public
    host (the tagging authority) would change every id.
    """
    return tag_uri(authority, article.first_seen_at.astimezone(UTC).date(), f"articles/{article.id}")


def _not_after(value: datetime | None, fallback: datetime, now: datetime) -> datetime | None:
    """``value``, or when it lies after ``now`` the stored ``fallback`` (so the bytes stay stable)."""
    if value is None or value <= now:
        return value
    return min(fallback, now)


def feed_item(article: Article, config: Config | None, authority: str, now: datetime) -> FeedItem:
    seen = article.first_seen_at
    published = _not_after(article.published, seen, now) or min(seen, now)
    updated = _version_updated(article, now)
    source_config = _source_config(config, article.source.name)
    categories = tuple(dict.fromkeys([c for c in [article.category, *(article.tags or [])] if c]))
    return FeedItem(
        id=entry_id(authority, article),
        url=article.canonical_url,
        title=article.title or article.canonical_url,
        summary=article.summary or "",
        content_html=article.content_html or "",
        published=published,
        updated=updated,
        authors=tuple(article.authors or ()),
        categories=categories,
        image=article.image,
        source_name=(source_config.title or source_config.name) if source_config else None,
        source_url=source_config.url if source_config else None,
        source_id=source_config.url if source_config else None,
    )


def _source_config(config: Config | None, name: str) -> SourceConfig | None:
    if config is None:
        return None
    return next((s for s in config.sources if s.name == name), None)


def item_order(pair: tuple[int, FeedItem]) -> tuple[datetime, int]:
    """Newest first when sorted in reverse: by (clamped) publication date, then by id."""
    return (pair[1].published or EPOCH, pair[0])


def feed_items(
    session: Session,
    feed: FeedConfig,
    *,
    config: Config | None = None,
    authority: str = "localhost",
    now: datetime | None = None,
    include_ids: Iterable[int] = (),
) -> list[FeedItem]:
    """The newest entries of ``feed`` (at most ``feed.limit``), as feed items, newest first.

    Failed, pending, duplicate and :data:`RETRACTED` articles are left out. Dates after ``now`` are
    replaced by when we first saw the article, so a story dated 2099 neither stays on top nor pins
    the feed's date. ``include_ids`` are archive ids (:func:`archive_ids`) whose entries must be
    present whatever their date (the ones no archive page holds yet). With ``config``, items carry
    their source's display name.

    A merged feed (:func:`merged_feed`) has one entry per story (:func:`_entry_where` says which
    stories, :func:`as_stories` what the entry holds), ordered by its main version's date: the date
    the entry shows, read through the same index as an article's (``ix_articles_dated``), so the
    newest-first query still stops after ``limit`` rows. (The story's ``first_published`` would keep
    a story in place when its main version changes, but it is another table's column: ordering by
    it would sort every story of the archive on each render, and the entry would show one date while
    sitting at another.)
    """
    now = now or utcnow()
    dated = func.coalesce(Article.published, Article.first_seen_at)
    # Future-dated articles (few) are fetched apart and placed by their clamped date.
    future = _entry_query(feed).where(Article.published > now, dated > now)  # dated: the index
    current = (
        _entry_query(feed)
        .where((Article.published.is_(None)) | (Article.published <= now))
        .order_by(dated.desc(), Article.id.desc())
    )
    picked: dict[int, tuple[Article, FeedItem]] = {}

    def take(rows: Iterable[Article], limit: int | None) -> None:
        count = 0
        for article in rows:
            if article.id in picked:
                continue
            # Stored bodies are the normalizer's nh3 output (crawled and pushed alike): the
            # feed builder need not sanitize them again.
            item = dataclasses.replace(feed_item(article, config, authority, now), content_is_clean=True)
            picked[article.id] = (article, item)
            count += 1
            if limit is not None and count >= limit:
                break

    def order(pair: tuple[int, tuple[Article, FeedItem]]) -> tuple[datetime, int]:
        return item_order((pair[0], pair[1][1]))

    take(session.scalars(future), None)
    take(session.scalars(current.limit(feed.limit)), feed.limit)
    ranked = sorted(picked.items(), key=order, reverse=True)[: feed.limit]
    wanted = set(anchored_entries(session, feed, list(include_ids))) - {
        article_id for article_id, _ in ranked
    }
    if wanted:
        picked = {}
        # The anchored entries were selected by the feed's filters already.
        take(session.scalars(ready_query().where(Article.id.in_(wanted))), None)
        ranked = sorted([*ranked, *picked.items()], key=order, reverse=True)
    entries = [pair for _, pair in ranked]
    if merged_feed(feed):
        return as_stories(session, entries, config, authority, now)
    return [item for _, item in entries]


def ready_query() -> Select[Article]:
    return (
        select(Article)
        .join(Source)
        .options(contains_eager(Article.source), defer(Article.raw_html), defer(Article.text))
        .where(Article.status == "ready")
    )


def archive_page_size(feed: FeedConfig) -> int:
    """Items per archive page: never more than the feed's ``limit``, so no item falls in between."""
    return min(feed.archive_page_size, feed.limit)


def archive_ids(session: Session, feed: FeedConfig) -> list[int]:
    """Ids of every article that ever was in ``feed`` (ready or retracted), oldest stored first.

    Archive page ``n`` holds positions ``[(n-1)·size, n·size)`` of this list. Ids only grow, so a page
    once full keeps its articles; a retracted one leaves a hole instead of shifting later pages.
    """
    return archive_slice(session, feed, 0)


def _archive_where(feed: FeedConfig) -> list[Any]:
    return [Article.status.in_(FEED_STATUSES), *feed_where(feed)]


def archive_count(session: Session, feed: FeedConfig) -> int:
    """``len(archive_ids(session, feed))``, counted by the database."""
    return session.scalar(select(func.count(Article.id)).where(*_archive_where(feed))) or 0


def archive_slice(session: Session, feed: FeedConfig, start: int, stop: int | None = None) -> list[int]:
    """``archive_ids(session, feed)[start:stop]``, without reading the ids before ``start``.

    A render needs only the ids after the last full page, and an archive page its own; reading every
    id ever stored made each render slower as the archive grew.
    """
    if stop is not None and stop <= start:
        return []
    query = select(Article.id).where(*_archive_where(feed)).order_by(Article.id).offset(start)
    if stop is not None:
        query = query.limit(stop - start)
    return list(session.scalars(query))


def archive_items(
    session: Session, feed: FeedConfig, ids: Sequence[int], config: Config | None, authority: str
) -> list[FeedItem]:
    """The items of the archive page holding ``ids`` (a slice of :func:`archive_ids`), newest first."""
    # A merged feed's page holds the stories whose first version in the feed is among its ids.
    entries = anchored_entries(session, feed, ids)
    rows = session.scalars(ready_query().where(Article.id.in_(entries)))
    # Future dates fall back to stored facts (first seen), so the page's bytes do not follow the clock.
    now = utcnow()
    pairs = sorted(
        ((a.id, (a, feed_item(a, config, authority, now))) for a in rows),
        key=lambda pair: item_order((pair[0], pair[1][1])),
        reverse=True,
    )
    if merged_feed(feed):
        return as_stories(session, [pair for _, pair in pairs], config, authority, now)
    return [item for _, (_, item) in pairs]
