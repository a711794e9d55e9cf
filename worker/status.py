"""A snapshot of the system for ``syndicate status``, ``GET /api/status`` and the status page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config
from worker.store.models import Article, FeedRender, Share, Source, utcnow
from worker.store.models import Endpoint as EndpointRow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _source_state(source: Source, now: datetime) -> str:
    """``ok``, ``failing`` (its last crawl failed) or ``backing off`` (beat runs are being skipped)."""
    if not source.consecutive_errors:
        return "ok" if source.last_success_at is not None or source.kind == "push" else "new"
    if source.next_crawl_at is not None and source.next_crawl_at > now:
        return "backing off"
    return "failing"


def _recent_skipped(session: Session, source_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The latest articles of a source that were not fetched, and why (robots.txt, backfill)."""
    rows = session.execute(
        select(Article.url, Article.error)
        .where(Article.source_id == source_id, Article.status == "skipped")
        .order_by(Article.id.desc())
        .limit(limit)
    ).all()
    return [{"url": url, "reason": reason} for url, reason in rows]


def snapshot(session: Session, config: Config, base_url: str) -> dict[str, Any]:
    """Sources with last crawl and error, article counts, feeds, and the share outbox backlog.

    A source's ``state`` is ``new``, ``ok``, ``failing`` or ``backing off``; with ``failing_since``
    (the first failure in a row) and ``next_crawl_at`` it tells an operator how long it has been
    broken and when it is tried again. ``skipped_recent`` lists articles never fetched, and why.
    """
    article_counts = dict(
        session.execute(select(Article.status, func.count()).group_by(Article.status)).all()
    )
    per_source = dict(
        session.execute(
            select(Article.source_id, func.count())
            .where(Article.status == "ready")
            .group_by(Article.source_id)
        ).all()
    )
    skipped_counts = dict(
        session.execute(
            select(Article.source_id, func.count())
            .where(Article.status == "skipped")
            .group_by(Article.source_id)
        ).all()
    )
    now = utcnow()
    sources = []
    for source in session.scalars(select(Source).order_by(Source.name)):
        configured = any(s.name == source.name for s in config.sources)
        if not configured and source.kind != "push":
            continue
        sources.append(
            {
                "name": source.name,
                "kind": source.kind,
                "url": source.url,
                "articles": per_source.get(source.id, 0),
                "last_crawl_at": _iso(source.last_crawl_at),
                "last_success_at": _iso(source.last_success_at),
                "last_error": source.last_error,
                "crawls": source.crawl_count,
                "errors": source.error_count,
                "state": _source_state(source, now),
                "consecutive_errors": source.consecutive_errors,
                "failing_since": _iso(source.failing_since),
                "next_crawl_at": _iso(source.next_crawl_at),
                "skipped": skipped_counts.get(source.id, 0),
                "skipped_recent": _recent_skipped(session, source.id)
                if skipped_counts.get(source.id)
                else [],
            }
        )
    renders: dict[str, dict[str, Any]] = {}
    for row in session.scalars(select(FeedRender)):
        renders.setdefault(row.feed_name, {})[row.format] = row
    feeds = []
    for feed in config.feeds:
        formats = renders.get(feed.name, {})
        any_row = next(iter(formats.values()), None)
        feeds.append(
            {
                "name": feed.name,
                "title": feed.title,
                "items": any_row.item_count if any_row else 0,
                "last_modified": _iso(any_row.last_modified) if any_row else None,
                "urls": {fmt: f"{base_url}/feeds/{feed.name}.{fmt}" for fmt in ("rss", "atom", "json")},
            }
        )
    share_counts: dict[str, dict[str, int]] = {}
    for endpoint, status, count in session.execute(
        select(Share.endpoint, Share.status, func.count()).group_by(Share.endpoint, Share.status)
    ):
        share_counts.setdefault(endpoint, {})[status] = count
    endpoint_rows = {r.name: r for r in session.scalars(select(EndpointRow))}
    endpoints = []
    for e in config.endpoints:
        erow = endpoint_rows.get(e.name)
        counts = share_counts.get(e.name, {})
        endpoints.append(
            {
                "name": e.name,
                "kind": e.kind,
                "enabled": e.enabled and (erow is None or erow.disabled_at is None),
                "disabled_reason": erow.disabled_reason if erow is not None else None,
                "disabled_at": _iso(erow.disabled_at) if erow is not None else None,
                "last_sent_at": _iso(erow.last_sent_at) if erow is not None else None,
                "last_error": erow.last_error if erow is not None else None,
                # Tokens and sessions (row.state) are never part of the status.
                **{
                    status: counts.get(status, 0)
                    for status in ("pending", "sending", "sent", "failed", "uncertain")
                },
            }
        )
    from worker.outbox import recent_shares

    return {
        "recent_shares": recent_shares(session, limit=10),
        "articles": {"total": sum(article_counts.values()), **article_counts},
        "sources": sources,
        "feeds": feeds,
        "endpoints": endpoints,
        "outbox_backlog": sum(e["pending"] for e in endpoints),
    }
