"""The routing rules: which articles a feed and an endpoint select.

A feed selects by ``sources``, ``categories`` and ``tags``; an endpoint by the same three, plus
``languages`` and ``feeds`` (an article of any of those feeds). Empty means all. Categories and tags
compare case-folded (:func:`~worker.store.models.term_key`, the form ``article_terms`` stores), for
feeds and endpoints alike. Feed membership has a SQL twin (:func:`feed_where`) for queries that
select a feed's rows; both are written here so they cannot drift apart. Feed membership
(:mod:`worker.store.queries`), share planning (:mod:`worker.outbox`) and the sweep call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, select

from config import Config, FeedConfig
from config.model import EndpointBase
from worker.store.models import Article, ArticleTerm, Source, term_key


def term_set(values: Iterable[str]) -> set[str]:
    """The compared forms of configured or stored categories and tags."""
    return {term_key(v) for v in values}


def _selects(
    sources: Iterable[str],
    categories: Iterable[str],
    tags: Iterable[str],
    source_name: str,
    category: str | None,
    article_tags: Iterable[str] | None,
) -> bool:
    """The rules feeds and endpoints share: source, category and tag (each empty = all)."""
    sources, categories, tags = list(sources), list(categories), list(tags)
    if sources and source_name not in sources:
        return False
    if categories and term_key(category or "") not in term_set(categories):
        return False
    return not (tags and not (term_set(t for t in article_tags or [] if t) & term_set(tags)))


def feed_selects(
    feed: FeedConfig, source_name: str, category: str | None, tags: Iterable[str] | None
) -> bool:
    """Whether an article of ``source_name`` with ``category`` and ``tags`` belongs in ``feed``.

    The Python twin of :func:`feed_where` (for one article in hand).
    """
    return _selects(feed.sources, feed.categories, feed.tags, source_name, category, tags)


def article_in_feed(feed: FeedConfig, article: Article) -> bool:
    """Whether ``article`` belongs in ``feed`` by the feed's source, category and tag filters.

    Status is not looked at: a retracted article still "belongs", so the feeds it has to leave are
    named (see :func:`worker.store.queries.affected_feeds`).
    """
    return feed_selects(feed, article.source.name, article.category, article.tags)


def feed_where(feed: FeedConfig, article: Any = Article) -> list[Any]:
    """SQL conditions selecting the articles of ``feed`` by source, category and tag (not status).

    Categories and tags are matched through ``article_terms`` (case-folded like :func:`feed_selects`),
    so a filtered feed reads only its own rows, as the unfiltered one does. ``article`` is the entity
    the conditions are on (an alias of :class:`Article` for a story's versions).
    """
    where: list[Any] = []
    if feed.sources:
        where.append(
            article.source_id.in_(select(Source.id).where(Source.name.in_(feed.sources)).scalar_subquery())
        )
    for kind, values in (("category", feed.categories), ("tag", feed.tags)):
        if values:
            where.append(
                article.terms.any(
                    and_(ArticleTerm.kind == kind, ArticleTerm.term.in_(sorted(term_set(values))))
                )
            )
    return where


def _language(code: str | None) -> str:
    return (code or "").casefold().split("-")[0]


def routes(config: Config, endpoint: EndpointBase, article: Article) -> bool:
    """Whether the routing rules of ``endpoint`` select ``article`` (feeds, sources, categories, ...)."""
    if not endpoint.enabled:
        return False
    if not _selects(
        endpoint.sources,
        endpoint.categories,
        endpoint.tags,
        article.source.name,
        article.category,
        article.tags,
    ):
        return False
    if endpoint.languages and _language(article.language) not in {_language(c) for c in endpoint.languages}:
        return False
    if endpoint.feeds:
        return any(article_in_feed(config.feed(name), article) for name in endpoint.feeds)
    return True
