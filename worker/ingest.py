"""The ingest path: an article pushed over the API is stored as pending, to be processed like a crawled one.

A push with the page's HTML is processed without a fetch; one with fields only gets a document
synthesized from them (:func:`synthesize_html`), so pushed and crawled articles share one normalizer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from worker.crawl import sync_sources
from worker.fetch import Discovered
from worker.normalize.urls import normalize_url
from worker.runtime import Runtime
from worker.store.models import PUSH_SOURCE, PUSHED_HINT, Article, utcnow


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

    @classmethod
    def from_discovered(cls, found: Discovered) -> PushedArticle:
        """A feed entry that carried the whole story, as fields to build its document from."""
        return cls(url=found.url, title=found.title, content_html=found.html, published=found.published)


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


# Source ids by name once this process synced its config into a database: ``{(url, id(config)):
# (config, ids)}``. A push then costs no re-sync of every source and endpoint row (the config of a
# running process does not change; a process with another config object syncs again).
_synced_sources: dict[tuple[str, int], tuple[Config, dict[str, int]]] = {}


def _pushed_source_id(rt: Runtime, session: Session, name: str) -> tuple[int, dict[str, int] | None]:
    """The id of source ``name``; and the freshly synced ids to remember once the session committed."""
    cached = _synced_sources.get((rt.database_url, id(rt.config)))
    fresh = None
    if cached is None or cached[0] is not rt.config or name not in cached[1]:
        fresh = sync_sources(session, rt.config)
        ids = fresh
    else:
        ids = cached[1]
    if name not in ids:
        raise LookupError(f"no source named {name!r}")
    return ids[name], fresh


def ingest_article(rt: Runtime, item: PushedArticle) -> tuple[int, bool]:
    """Store a pushed article as pending; return ``(id, created)``. Re-pushing a URL updates it."""
    raw = item.html if item.html is not None else (synthesize_html(item) if item.title else None)
    url = normalize_url(item.url)
    with rt.session() as session:
        source_id, fresh = _pushed_source_id(rt, session, item.source or PUSH_SOURCE)
        article = session.scalar(select(Article).where((Article.canonical_url == url) | (Article.url == url)))
        created = article is None
        if article is None:
            article = Article(source_id=source_id, url=url, canonical_url=url)
            session.add(article)
        article.raw_html = raw
        # A URL someone pushed is fetched under the ingest rules (never this deployment's own services).
        article.hints = {**(article.hints or {}), PUSHED_HINT: "1"}
        if article.status == "failed":
            article.status = "pending"
        article.last_seen_at = utcnow()
        session.flush()
        article_id = article.id
    if fresh is not None:  # committed: the rows behind these ids exist
        _synced_sources[(rt.database_url, id(rt.config))] = (rt.config, fresh)
    return article_id, created
