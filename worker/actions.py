"""Operator actions on the stored state: pause and resume a source, pick and reset failed work to retry.

Plain functions on a session, for ``syndicate retry`` and ``syndicate source pause/resume`` (and
usable by the status page). They only read and change rows; the caller commits, then enqueues the
tasks, as every stage does. Resetting one share or article is ``outbox.operator.retry_share`` and
``status.retry_article`` (the status page's retry buttons call them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import Article, Share, Source, utcnow

# Bulk retries take only shares that certainly did not reach the network; an ``uncertain`` one may
# have been posted, so it is retried by id or when asked for explicitly.
BULK_SHARE_STATUSES = ("failed",)
RETRYABLE_SHARE_STATUSES = ("failed", "uncertain")


@dataclass(frozen=True)
class PauseState:
    """A source's pause as stored: ``paused_at`` is None when it runs."""

    name: str
    paused_at: datetime | None
    reason: str | None
    changed: bool


def pause_source(session: Session, name: str, reason: str | None = None) -> PauseState:
    """Pause source ``name`` (LookupError if the table has none): beat and the crawl task skip it.

    Pausing a paused source keeps its first ``paused_at`` and replaces the reason when one is given.
    """
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        raise LookupError(name)
    changed = source.paused_at is None
    if changed:
        source.paused_at = utcnow()
    if reason is not None or changed:
        source.pause_reason = reason
    return PauseState(name, source.paused_at, source.pause_reason, changed)


def resume_source(session: Session, name: str) -> PauseState:
    """Resume source ``name`` (LookupError if none); ``changed`` says whether it was paused."""
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        raise LookupError(name)
    changed = source.paused_at is not None
    source.paused_at, source.pause_reason = None, None
    return PauseState(name, None, None, changed)


def failed_share_ids(
    session: Session, *, endpoint: str | None = None, statuses: tuple[str, ...] = BULK_SHARE_STATUSES
) -> list[int]:
    """Ids of shares in ``statuses`` (of one endpoint, or of all), oldest first."""
    query = select(Share.id).where(Share.status.in_(statuses)).order_by(Share.id)
    if endpoint is not None:
        query = query.where(Share.endpoint == endpoint)
    return list(session.scalars(query))


def failed_article_ids(session: Session) -> list[int]:
    """Ids of every failed article, oldest first."""
    return list(session.scalars(select(Article.id).where(Article.status == "failed").order_by(Article.id)))
