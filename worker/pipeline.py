"""The pipeline stages as plain functions: crawl → process (fetch, normalize, store) → render → share.

Each stage opens its own transaction, commits, and returns the ids the next stage needs; the Celery
tasks in :mod:`worker.tasks` enqueue those ids only after the stage returned, i.e. after commit.
Stages are idempotent: running one twice for the same id changes nothing the second time.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urldefrag

from bs4 import BeautifulSoup
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config, FeedConfig
from feeds.build import FeedItem, FeedMeta, render_all
from worker.errors import FetchError, NormalizeError, Retryable
from worker.fetch import Discovered, discover
from worker.normalize import Article as NormalizedArticle
from worker.normalize import normalize
from worker.runtime import Runtime
from worker.store.models import Article, FeedRender, Source, utcnow

log = logging.getLogger(__name__)

PUSH_SOURCE = "api"
MAX_ERROR_CHARS = 2000
# Column sizes of ``articles`` (PostgreSQL enforces them; a longer value would fail the whole stage).
MAX_URL_CHARS = 2048
MAX_CATEGORY_CHARS = 255


def sync_sources(session: Session, config: Config) -> dict[str, int]:
    """Make the ``sources`` (and ``endpoints``) tables match the config by name; return source ``{name: id}``.

    Sources removed from the config stay in the table (their articles remain in the archive).
    """
    existing = {s.name: s for s in session.scalars(select(Source))}
    wanted = [(s.name, s.kind, s.url) for s in config.sources] + [(PUSH_SOURCE, "push", "")]
    for name, kind, url in wanted:
        row = existing.get(name)
        if row is None:
            row = Source(name=name, kind=kind, url=url)
            session.add(row)
            existing[name] = row
        else:
            row.kind, row.url = kind, url
    session.flush()
    from worker.outbox import sync_endpoints

    # Endpoints get their row (and so their "added" time) as early as sources do.
    sync_endpoints(session, config)
    return {name: row.id for name, row in existing.items()}


def normalize_url(url: str) -> str:
    """The form of a URL we key articles by: fragment dropped, surrounding space stripped."""
    return urldefrag(url.strip())[0]


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


# ---------------------------------------------------------------- crawl


def crawl_source(rt: Runtime, source_id: int) -> list[int]:
    """Discover article URLs of a source; return the ids of articles that need processing.

    New URLs become ``pending`` articles. Already stored ones are only touched (``last_seen_at``).
    A permanent fetch error is recorded on the source; a transient one is raised for a retry.
    """
    with rt.session() as session:
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"no source with id {source_id}")
        name = source.name
    try:
        source_config = rt.config.source(name)
    except KeyError:
        log.warning("source %s is no longer configured; skipping crawl", name)
        return []

    try:
        found = discover(source_config, rt.fetcher)
    except FetchError as exc:
        with rt.session() as session:
            source = session.get(Source, source_id)
            assert source is not None
            source.last_crawl_at = utcnow()
            source.last_error = _short(exc)
            source.error_count += 1
        if isinstance(exc, Retryable):
            raise
        log.warning("crawl of %s failed: %s", name, exc)
        return []

    to_process: list[int] = []
    now = utcnow()
    with rt.session() as session:
        source = session.get(Source, source_id)
        assert source is not None
        # What a source's first successful crawl finds is its back catalogue, not news.
        first_crawl = source.last_success_at is None
        hints = {normalize_url(d.url): d for d in reversed(found)}
        urls = list(dict.fromkeys(normalize_url(d.url) for d in found))
        too_long = [u for u in urls if len(u) > MAX_URL_CHARS]
        if too_long:
            log.warning("source %s: skipped %d link(s) over %d chars", name, len(too_long), MAX_URL_CHARS)
            urls = [u for u in urls if len(u) <= MAX_URL_CHARS]
        known = {
            a.canonical_url: a
            for a in session.scalars(
                select(Article).where((Article.canonical_url.in_(urls)) | (Article.url.in_(urls)))
            )
        }
        known.update({a.url: a for a in list(known.values())})
        for url in urls:
            article = known.get(url)
            if article is None:
                article = Article(
                    source_id=source_id, url=url, canonical_url=url, status="pending", backfill=first_crawl
                )
                article.raw_html = _feed_content(hints[url])
                try:
                    with session.begin_nested():
                        session.add(article)
                except IntegrityError:  # a concurrent crawl (beat + `syndicate crawl`) stored it first
                    continue
                known[url] = article
                to_process.append(article.id)
            else:
                article.last_seen_at = now
                if article.status == "pending":
                    to_process.append(article.id)
        source.last_crawl_at = now
        source.last_success_at = now
        source.last_error = None
        source.crawl_count += 1
    return to_process


FULL_CONTENT_MIN_CHARS = 500


def _feed_content(found: Discovered) -> str | None:
    """A document built from a feed entry's full content, or None when the page must be fetched.

    Feeds that carry the whole story (content:encoded, Atom content) save one fetch per article.
    """
    if not found.html or not found.title:
        return None
    if len(BeautifulSoup(found.html, "lxml").get_text(" ", strip=True)) < FULL_CONTENT_MIN_CHARS:
        return None
    return synthesize_html(
        PushedArticle(url=found.url, title=found.title, content_html=found.html, published=found.published)
    )


# ---------------------------------------------------------------- process


@dataclass
class ProcessOutcome:
    """What processing one article changed: which feeds to re-render, whether to share."""

    article_id: int
    status: str
    changed: bool = False
    feeds: list[str] = field(default_factory=list)
    share: bool = False


def _apply(article: Article, data: NormalizedArticle) -> bool:
    """Copy normalized fields onto the row; return whether the content changed."""
    changed = article.content_hash != data.content_hash
    article.title = data.title
    article.summary = data.summary
    article.content_html = data.content_html
    article.text = data.text
    article.published = data.published
    article.updated = data.updated
    article.authors = list(data.authors)
    article.category = data.category[:MAX_CATEGORY_CHARS] if data.category else data.category
    article.tags = list(data.tags)
    article.image = data.image
    article.language = data.language
    article.content_hash = data.content_hash
    return changed


def process_article(rt: Runtime, article_id: int) -> ProcessOutcome:
    """Fetch (unless the HTML was pushed), normalize and store one article.

    Transient fetch errors are raised for a retry (the row keeps ``pending``); permanent ones and
    pages that hold no article mark it ``failed`` with the reason.
    """
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise LookupError(f"no article with id {article_id}")
        if article.status == "duplicate":
            return ProcessOutcome(article_id, "duplicate")
        url, raw_html = article.url, article.raw_html
        source_name = article.source.name
        article.attempts += 1
    source_config = next((s for s in rt.config.sources if s.name == source_name), None)
    default_category = source_config.category if source_config else None
    language_hint = source_config.options.get("language") if source_config else None

    try:
        if raw_html is not None:
            data = normalize(raw_html, url, default_category=default_category, language_hint=language_hint)
            final_url = url
        else:
            result = rt.fetcher.get(url)
            final_url = result.final_url
            data = normalize(
                result.body,
                final_url,
                content_type=result.content_type,
                default_category=default_category,
                language_hint=language_hint,
            )
    except (FetchError, NormalizeError) as exc:
        if isinstance(exc, Retryable):
            raise
        mark_article_failed(rt, article_id, exc)
        return ProcessOutcome(article_id, "failed")

    with rt.session() as session:
        article = session.get(Article, article_id)
        assert article is not None
        canonical = normalize_url(data.canonical_url or final_url)
        if len(canonical) > MAX_URL_CHARS:  # keep the URL we know rather than fail on the column size
            canonical = article.canonical_url
        if canonical != article.canonical_url:
            other = session.scalar(select(Article).where(Article.canonical_url == canonical))
            if other is not None and other.id != article.id:
                article.status = "duplicate"
                article.duplicate_of_id = other.id
                other.last_seen_at = utcnow()
                return ProcessOutcome(article_id, "duplicate")
            article.canonical_url = canonical
        was_ready = article.status == "ready"
        changed = _apply(article, data)
        article.status = "ready"
        article.error = None
        article.fetched_at = utcnow()
        if changed:
            article.changed_at = article.fetched_at
        feeds = affected_feeds(rt.config, article) if changed else []
        return ProcessOutcome(article_id, "ready", changed=changed, feeds=feeds, share=not was_ready)


def mark_article_failed(rt: Runtime, article_id: int, exc: BaseException) -> None:
    """Record a final failure on an article (used when retries are exhausted too)."""
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is not None and article.status != "ready":
            article.status = "failed"
            article.error = _short(exc)


# ---------------------------------------------------------------- feeds


def _fold(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def article_in_feed(feed: FeedConfig, article: Article) -> bool:
    """Whether ``article`` belongs in ``feed`` by the feed's source, category and tag filters."""
    if feed.sources and article.source.name not in feed.sources:
        return False
    if feed.categories and (article.category or "").casefold() not in _fold(feed.categories):
        return False
    return not (feed.tags and not (_fold(article.tags or []) & _fold(feed.tags)))


def affected_feeds(config: Config, article: Article) -> list[str]:
    """Names of the configured feeds ``article`` belongs to."""
    return [f.name for f in config.feeds if article_in_feed(f, article)]


def feed_items(session: Session, feed: FeedConfig) -> list[FeedItem]:
    """The newest ready articles of ``feed``, as feed items, newest first."""
    query = (
        select(Article)
        .join(Source)
        .where(Article.status == "ready")
        .order_by(func.coalesce(Article.published, Article.first_seen_at).desc(), Article.id.desc())
    )
    if feed.sources:
        query = query.where(Source.name.in_(feed.sources))
    items: list[FeedItem] = []
    for article in session.scalars(query.execution_options(yield_per=200)):
        if not article_in_feed(feed, article):
            continue
        categories = tuple(dict.fromkeys([c for c in [article.category, *(article.tags or [])] if c]))
        items.append(
            FeedItem(
                id=article.canonical_url,
                url=article.canonical_url,
                title=article.title or article.canonical_url,
                summary=article.summary or "",
                content_html=article.content_html or "",
                published=article.published or article.first_seen_at,
                updated=article.updated or article.changed_at,
                authors=tuple(article.authors or ()),
                categories=categories,
                image=article.image,
                source_name=article.source.name,
            )
        )
        if len(items) >= feed.limit:
            break
    return items


def render_feed(rt: Runtime, feed_name: str) -> bool:
    """Render every format of one feed; store the bytes if they changed. Returns whether they did."""
    try:
        feed = rt.config.feed(feed_name)
    except KeyError:
        log.warning("feed %s is no longer configured; skipping render", feed_name)
        return False
    base = rt.settings.base_url
    changed = False
    with rt.session() as session:
        items = feed_items(session, feed)
        meta = FeedMeta(
            name=feed.name,
            title=feed.title,
            home_url=base + "/",
            self_url_base=f"{base}/feeds/{feed.name}",
            description=feed.description or feed.title,
            language=feed.language,
        )
        rendered = render_all(meta, items)
        stored = {
            r.format: r for r in session.scalars(select(FeedRender).where(FeedRender.feed_name == feed.name))
        }
        now = utcnow()
        for fmt, out in rendered.items():
            row = stored.get(fmt)
            if row is None:
                row = FeedRender(feed_name=feed.name, format=fmt)
                session.add(row)
            elif row.etag == out.etag:
                continue
            row.body, row.etag, row.content_type = out.body, out.etag, out.content_type
            row.item_count = len(items)
            row.last_modified = now
            row.rendered_at = now
            changed = True
    return changed


# ---------------------------------------------------------------- share


# ---------------------------------------------------------------- ingest


@dataclass(frozen=True)
class PushedArticle:
    """An article pushed over the ingest API (already validated by the HTTP layer)."""

    url: str
    html: str | None = None
    title: str | None = None
    content_html: str | None = None
    summary: str | None = None
    published: datetime | None = None
    authors: Sequence[str] = ()
    category: str | None = None
    tags: Sequence[str] = ()
    image: str | None = None
    language: str | None = None
    source: str | None = None


def synthesize_html(item: PushedArticle) -> str:
    """Turn pushed fields into one HTML document so pushed and crawled articles share one normalizer."""
    ld: dict[str, object] = {"@context": "https://schema.org", "@type": "NewsArticle", "url": item.url}
    if item.title:
        ld["headline"] = item.title
    if item.published:
        ld["datePublished"] = item.published.isoformat()
    if item.authors:
        ld["author"] = [{"@type": "Person", "name": a} for a in item.authors]
    if item.category:
        ld["articleSection"] = item.category
    if item.tags:
        ld["keywords"] = list(item.tags)
    if item.image:
        ld["image"] = item.image
    if item.summary:
        ld["description"] = item.summary
    ld_json = json.dumps(ld, ensure_ascii=False).replace("</", "<\\/")
    lang = f' lang="{html.escape(item.language)}"' if item.language else ""
    title = html.escape(item.title or "")
    desc = f'<meta name="description" content="{html.escape(item.summary)}">' if item.summary else ""
    return (
        f'<!doctype html><html{lang}><head><meta charset="utf-8"><title>{title}</title>{desc}'
        f'<link rel="canonical" href="{html.escape(item.url)}">'
        f'<script type="application/ld+json">{ld_json}</script></head>'
        f"<body><article><h1>{title}</h1>{item.content_html or ''}</article></body></html>"
    )


def ingest_article(rt: Runtime, item: PushedArticle) -> tuple[int, bool]:
    """Store a pushed article as pending; return ``(id, created)``. Re-pushing a URL updates it."""
    raw = item.html if item.html is not None else (synthesize_html(item) if item.title else None)
    url = normalize_url(item.url)
    with rt.session() as session:
        ids = sync_sources(session, rt.config)
        source_name = item.source or PUSH_SOURCE
        if source_name not in ids:
            raise LookupError(f"no source named {source_name!r}")
        article = session.scalar(select(Article).where((Article.canonical_url == url) | (Article.url == url)))
        created = article is None
        if article is None:
            article = Article(source_id=ids[source_name], url=url, canonical_url=url)
            session.add(article)
        article.raw_html = raw
        if article.status == "failed":
            article.status = "pending"
        article.last_seen_at = utcnow()
        session.flush()
        return article.id, created


def stale_work(rt: Runtime, older_than: timedelta = timedelta(minutes=10)) -> tuple[list[int], list[int]]:
    """Pending articles and shares untouched for ``older_than``: their task message was probably lost."""
    cutoff = utcnow() - older_than
    with rt.session() as session:
        articles = list(
            session.scalars(
                select(Article.id)
                .where(Article.status == "pending", Article.last_seen_at < cutoff)
                .limit(500)
            )
        )
    from worker.outbox import stale_shares

    return articles, stale_shares(rt, older_than)
