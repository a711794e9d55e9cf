"""SQLAlchemy 2 models: sources, fetch validators, articles, feed renders and the share outbox.

The schema is owned by the Alembic migrations in ``worker/store/migrations``; these classes must
match them (``tests/store/test_migrations.py`` compares the two).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import func as sql_func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column sizes of ``articles`` (PostgreSQL enforces them; a longer value would fail the whole stage).
MAX_URL_CHARS = 2048
MAX_CATEGORY_CHARS = 255
# The source row pushed articles belong to unless the push names one, and the ``hints`` key that marks
# an article's URL as pushed (fetched under the ingest rules, never this deployment's own services).
PUSH_SOURCE = "api"
PUSHED_HINT = "pushed"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC; always comes back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalize to UTC before storing; naive values are taken as UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns naive."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (Alembic needs them on every backend)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class Source(Base):
    """A configured source, synced from the YAML config by name; keeps crawl bookkeeping."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_crawl_at: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    crawl_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # Back-off: failures in a row, since when, and the earliest time beat may crawl it again.
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    next_crawl_at: Mapped[datetime | None] = mapped_column(default=None)
    # Where an interrupted crawl (host busy) resumes: the documents it had still to fetch.
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Paused by an operator (`syndicate source pause`): neither beat nor the crawl task fetches it.
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    pause_reason: Mapped[str | None] = mapped_column(Text, default=None)

    articles: Mapped[list[Article]] = relationship(back_populates="source")


class FetchState(Base):
    """What we last learnt about one URL: its validators for conditional GETs, and its ``lastmod``.

    One row per URL fetched or listed: listing pages, sitemaps, feeds and articles alike. ``lastmod``
    is the modification time the source announced (sitemap ``<lastmod>``, a feed's ``updated``);
    an article is fetched again only when a newer one is announced.
    """

    __tablename__ = "fetch_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), index=True, default=None
    )
    etag: Mapped[str | None] = mapped_column(Text, default=None)
    last_modified: Mapped[str | None] = mapped_column(Text, default=None)
    lastmod: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)


class Article(Base):
    """One story, unique by canonical URL. ``status``: pending → ready | failed | duplicate | skipped;
    ready → retracted (it leaves the feeds).

    ``skipped`` articles are never fetched: robots.txt disallows them, or they lie beyond a new
    source's ``backfill``; ``error`` says which. ``hints`` keeps what the feed or sitemap said about
    the story (title, dates, summary, content), used where the fetched page lacks a field.
    """

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"), default=None)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    summary: Mapped[str | None] = mapped_column(Text, default=None)
    content_html: Mapped[str | None] = mapped_column(Text, default=None)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    published: Mapped[datetime | None] = mapped_column(default=None, index=True)
    updated: Mapped[datetime | None] = mapped_column(default=None)
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    category: Mapped[str | None] = mapped_column(String(255), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    image: Mapped[str | None] = mapped_column(Text, default=None)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    raw_html: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)
    changed_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # Found by a source's first crawl: its back catalogue, which endpoints do not announce.
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    hints: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The story this article reports (set when it becomes ready) and its role there: "main" (the
    # version feeds show and endpoints post) or "version" (another write-up: "also reported by").
    story_id: Mapped[int | None] = mapped_column(
        ForeignKey("stories.id", ondelete="SET NULL"), default=None, index=True
    )
    story_role: Mapped[str | None] = mapped_column(String(16), default=None)

    source: Mapped[Source] = relationship(back_populates="articles")
    story: Mapped[Story | None] = relationship(back_populates="articles")
    shares: Mapped[list[Share]] = relationship(back_populates="article")
    terms: Mapped[list[ArticleTerm]] = relationship(
        back_populates="article", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        # Feeds list their ready articles newest first by this expression; without the index every
        # render sorted the whole archive (101 ms of a 174 ms render at 20,000 articles on SQLite).
        Index("ix_articles_dated", status, sql_func.coalesce(published, first_seen_at), id),
    )

    @validates("category", "tags")
    def _index_terms(self, key: str, value: Any) -> Any:
        """Keep :attr:`terms` (the SQL-searchable category and tags) in step with the two fields."""
        category = value if key == "category" else self.category
        tags = value if key == "tags" else self.tags
        wanted = term_keys(category, tags)
        if wanted != term_keys(self.category, self.tags) or (wanted and not self.terms):
            held = {(t.kind, t.term): t for t in self.terms}
            self.terms = [held.get(k) or ArticleTerm(kind=k[0], term=k[1]) for k in sorted(wanted)]
        return value


TERM_CHARS = 255


def term_key(value: str) -> str:
    """How a category or tag is compared: case-folded, cut to what the index holds."""
    return value.casefold()[:TERM_CHARS]


def term_keys(category: str | None, tags: Any) -> set[tuple[str, str]]:
    """The ``(kind, term)`` pairs an article with ``category`` and ``tags`` is found by."""
    keys = {("tag", term_key(t)) for t in tags or () if isinstance(t, str) and t}
    if category:
        keys.add(("category", term_key(category)))
    return keys


class ArticleTerm(Base):
    """One case-folded category or tag of an article, so feeds filter by them in SQL.

    Kept by :meth:`Article._index_terms` whenever ``category`` or ``tags`` is set; the article's own
    fields stay what the page said.
    """

    __tablename__ = "article_terms"
    __table_args__ = (Index("ix_article_terms_kind_term", "kind", "term", "article_id"),)

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    term: Mapped[str] = mapped_column(String(TERM_CHARS), primary_key=True)

    article: Mapped[Article] = relationship(back_populates="terms")


class Story(Base):
    """One event as every partner reported it: the unit merged feeds list and endpoints post.

    Member articles point here (``Article.story_id``); the one with ``story_role == "main"`` is the
    version shown and posted. ``entry_key`` and ``entry_day`` make the feed entry's id (a tag URI):
    fixed when the story is founded (``articles/<founder id>``, the id that article's entry already
    had) and never changed by joins, a new main version or a merge, so subscribers never see the
    story as new. ``updated_at`` moves whenever its versions or main version change.
    """

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    first_published: Mapped[datetime | None] = mapped_column(default=None, index=True)
    entry_key: Mapped[str] = mapped_column(String(64), unique=True)
    entry_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    articles: Mapped[list[Article]] = relationship(back_populates="story")


class StoryFeatures(Base):
    """What the matcher keeps of a ready article (serialised features, embedding once computed)."""

    __tablename__ = "story_features"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class StoryKey(Base):
    """The candidate index: an article is found by each of its keys (LSH band, name, number, link) on
    each day around its publication, so finding candidates never scans the archive."""

    __tablename__ = "story_keys"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970-01-01 (UTC)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_story_keys_article_id", "article_id"),)


class StorySplit(Base):
    """An operator split ``article_id`` out of ``story_id``: the matcher never joins them again."""

    __tablename__ = "story_splits"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedRender(Base):
    """The stored bytes of one feed in one format, re-rendered only when its content changes."""

    __tablename__ = "feed_renders"
    __table_args__ = (UniqueConstraint("feed_name", "format", name="uq_feed_renders_feed_format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_name: Mapped[str] = mapped_column(String(63))
    format: Mapped[str] = mapped_column(String(8))
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(80))
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    last_modified: Mapped[datetime] = mapped_column(default=utcnow)
    rendered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Endpoint(Base):
    """A configured share endpoint as the database knows it: when it was added, whether it is disabled.

    ``state`` holds what the endpoint changes at run time (Bluesky sessions, rotated OAuth tokens, a
    migrated Telegram chat id): never written back to the YAML, never shown on the status page.
    """

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_error_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Share(Base):
    """The share outbox: one row per (article, endpoint).

    ``status``: pending → sending (claimed, committed before the request) → sent | failed |
    uncertain (the request may have reached a network that cannot tell us; an operator decides).
    ``not_before`` is when the next attempt may run (delay after publish, retry schedule).
    """

    __tablename__ = "shares"
    __table_args__ = (
        UniqueConstraint("article_id", "endpoint", name="uq_shares_article_endpoint"),
        # One post per story per endpoint: the database refuses a second (NULL: no story, e.g. a
        # share planned before stories existed or whose story was merged away).
        Index("uq_shares_story_endpoint", "story_id", "endpoint", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    remote_id: Mapped[str | None] = mapped_column(Text, default=None)
    remote_url: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None, index=True)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    # Indexed by uq_shares_story_endpoint (story_id first).
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), default=None)

    article: Mapped[Article] = relationship(back_populates="shares")


class ShareSkip(Base):
    """An (article, endpoint) the planner decided not to share, and why: the visible side of that choice.

    ``reason``: ``first_crawl`` (found by its source's first crawl), ``back_catalogue`` (first seen
    before the endpoint was added), ``too_old`` (pushed, but published before the endpoint was added
    and not within its ``max_age``), ``routing`` (the endpoint's rules do not select it) or
    ``same_story`` (another version of its story has the story's one share to that endpoint). A share
    planned later (``syndicate share send``, a routing change) removes the row.
    """

    __tablename__ = "share_skips"
    __table_args__ = (UniqueConstraint("article_id", "endpoint", name="uq_share_skips_article_endpoint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
