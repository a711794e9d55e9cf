"""Planning: which endpoints get an article (routing rules, the back catalogue) and its share rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from config import Config
from config.model import EndpointBase
from worker.outbox.skips import SKIP_REASONS, record_skips
from worker.store.endpoints import sync_endpoints
from worker.store.models import PUSHED_HINT, Article, Share, utcnow
from worker.store.models import Endpoint as EndpointRow
from worker.store.routing import routes

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


# A pushed article dated this long before its endpoint was added is the back catalogue ("too old").
PUSH_GRACE = timedelta(days=1)


def back_catalogue_reason(
    endpoint: EndpointBase, row: EndpointRow, article: Article, now: datetime
) -> str | None:
    """Why ``article`` is old news for ``endpoint`` (a :data:`SKIP_REASONS` key), or None.

    A pushed article has no first crawl: it is old news (``too_old``) when its own date is more than
    :data:`PUSH_GRACE` before the endpoint was added, with the same ``max_age`` exception as a
    crawled article (a story pushed just after it was published is news, even to a new endpoint).
    """
    if endpoint.back_catalogue:
        return None
    if endpoint.max_age is not None and article.published is not None:
        if now - article.published <= timedelta(seconds=endpoint.max_age):
            return None
    if article.backfill:
        return "first_crawl"
    if article.first_seen_at < row.added_at:
        return "back_catalogue"
    pushed = bool((article.hints or {}).get(PUSHED_HINT))
    if pushed and article.published is not None and article.published < row.added_at - PUSH_GRACE:
        return "too_old"
    return None


def in_back_catalogue(endpoint: EndpointBase, row: EndpointRow, article: Article, now: datetime) -> bool:
    """Whether ``article`` is old news for ``endpoint`` (see :func:`back_catalogue_reason`)."""
    return back_catalogue_reason(endpoint, row, article, now) is not None


def plan_shares(rt: Runtime, article_id: int, *, force: Iterable[str] = ()) -> list[int]:
    """Create the outbox rows for one ready article; return the ids of shares to deliver.

    ``force`` names endpoints that share the article even if it is back catalogue or not routed
    to them (an operator's explicit ``syndicate share send``).

    An article of a story (``story_id`` set) shares through its story: one share per (story,
    endpoint), kept by the unique index ``uq_shares_story_endpoint``. The first version planned for
    an endpoint makes the story's share (which version is posted is decided when it is sent, see
    :func:`best_version`); every later one is skipped as ``same_story``, and a story share already
    sent is handed back for delivery where the endpoint edits its posts (Mastodon ``story_edit``).
    """
    forced = set(force)
    pending: list[int] = []
    now = utcnow()
    with rt.session() as session:
        article = session.get(
            Article, article_id, options=[joinedload(Article.source), joinedload(Article.story)]
        )
        if article is None or article.status != "ready":
            return []
        added, fresh = _endpoints_added(rt, session)
        existing = {s.endpoint: s for s in article.shares}
        story_shares = _story_shares(session, article.story_id)
        skipped: dict[str, str] = {}
        for endpoint in rt.config.endpoints:
            share = existing.get(endpoint.name)
            if share is None:
                if endpoint.name not in forced:
                    if not routes(rt.config, endpoint, article):
                        if endpoint.enabled:
                            skipped[endpoint.name] = "routing"
                        continue
                    reason = back_catalogue_reason(endpoint, added[endpoint.name], article, now)
                    if reason is not None:
                        log.debug(
                            "%s: article %s not shared: %s", endpoint.name, article_id, SKIP_REASONS[reason]
                        )
                        skipped[endpoint.name] = reason
                        continue
                share = story_shares.get(endpoint.name)
                if share is None:
                    new_id = _insert_share(
                        session,
                        article.id,
                        endpoint.name,
                        _not_before(endpoint, article, now),
                        article.story_id,
                    )
                    if new_id is not None:
                        pending.append(new_id)
                        continue
                    # Another worker planned it first (for this article, or another version of its
                    # story): theirs counts.
                    share = session.scalar(
                        select(Share).where(Share.article_id == article.id, Share.endpoint == endpoint.name)
                    )
                    if share is None and article.story_id is not None:
                        share = _story_shares(session, article.story_id).get(endpoint.name)
                    if share is None:
                        raise LookupError(f"share of article {article.id} to {endpoint.name} vanished")
                if share.article_id != article.id:
                    skipped[endpoint.name] = "same_story"
                    if share.status == "sent" and edits_posts(endpoint):
                        pending.append(share.id)  # delivering a sent story share edits its post
                    if endpoint.name not in forced:
                        continue
            if endpoint.name in forced and share.status in ("failed", "uncertain"):
                share.status, share.not_before, share.attempts = "pending", None, 0
            if share.status == "pending":
                pending.append(share.id)
        record_skips(
            session, article.id, skipped, [e.name for e in rt.config.endpoints if e.name not in skipped]
        )
    if fresh:  # committed: the rows and their added_at are stored
        _synced_endpoints[(rt.database_url, id(rt.config))] = (rt.config, added)
    return pending


def _story_shares(session: Session, story_id: int | None) -> dict[str, Share]:
    """The shares of story ``story_id`` by endpoint (none without a story)."""
    if story_id is None:
        return {}
    return {s.endpoint: s for s in session.scalars(select(Share).where(Share.story_id == story_id))}


def edits_posts(endpoint: EndpointBase) -> bool:
    """Whether ``endpoint`` edits a story's post when another version arrives (Mastodon ``story_edit``)."""
    return bool(getattr(endpoint, "story_edit", False))


def _not_before(endpoint: EndpointBase, article: Article, now: datetime) -> datetime | None:
    """When a new share of ``article`` to ``endpoint`` may go out first.

    ``delay`` after now; for an article of a story also ``story_window`` after the story began (its
    ``created_at``: when its first version became ready), so that the version that fits the endpoint
    best can arrive. Pacing and quiet hours still apply at delivery.
    """
    moments = [now + timedelta(seconds=endpoint.delay)] if endpoint.delay else []
    story = article.story
    if story is not None and endpoint.story_window:
        moments.append(story.created_at + timedelta(seconds=endpoint.story_window))
    latest = max(moments, default=None)
    return latest if latest is not None and latest > now else None


# Endpoint rows (for ``added_at``) once this process synced them: ``{(url, id(config)): (config, rows)}``.
# ``added_at`` never changes once a row exists, so planning need not read every endpoint row again.
_synced_endpoints: dict[tuple[str, int], tuple[Config, dict[str, EndpointRow]]] = {}


def _endpoints_added(rt: Runtime, session: Session) -> tuple[dict[str, EndpointRow], bool]:
    """The endpoint rows of ``rt.config`` (for ``added_at``); and whether to remember them after commit."""
    cached = _synced_endpoints.get((rt.database_url, id(rt.config)))
    if cached is not None and cached[0] is rt.config:
        return cached[1], False
    rows = sync_endpoints(session, rt.config)
    session.flush()
    return rows, True


def _insert_share(
    session: Session, article_id: int, endpoint: str, not_before: datetime | None, story_id: int | None = None
) -> int | None:
    """Insert the share row; its id, or None when another worker inserted it first.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` on PostgreSQL and SQLite instead of a
    savepoint, the insert and its release (three round trips, and a rollback on a conflict). The
    conflict may be on (article, endpoint) or on (story, endpoint), where another version of the
    story won the race: no conflict target, so either unique index makes the insert do nothing
    (elsewhere the IntegrityError does).
    """
    values = {
        "article_id": article_id,
        "story_id": story_id,
        "endpoint": endpoint,
        "not_before": not_before,
        "status": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        share = Share(**values)
        try:
            with session.begin_nested():
                session.add(share)
        except IntegrityError:
            return None
        return share.id
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Share).values(**values).on_conflict_do_nothing().returning(Share.id)
    return session.scalar(statement)
