"""Operator actions on the stored state: pause and resume a source, pick and reset failed work to retry.

The one home of these actions: ``syndicate retry``, ``share retry`` and ``source pause/resume``, the
API's retry routes and so the status page's retry buttons all call them. They only read and change
rows; the caller commits (:func:`retry_share` commits its own session), then enqueues the tasks, as
every stage does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.runtime import Runtime
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


def retry_share(rt: Runtime, share_id: int) -> bool:
    """Put a failed or uncertain share back to pending (an operator's decision); return whether it was."""
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is None or share.status not in RETRYABLE_SHARE_STATUSES:
            return False
        share.status, share.not_before, share.attempts, share.claimed_at = "pending", None, 0, None
        return True


def retry_article(session: Session, article_id: int) -> bool:
    """Put a failed article back to ``pending`` (an operator's decision); return whether it was failed.

    The caller enqueues ``process_article`` after the commit, as for any pending article.
    """
    article = session.get(Article, article_id)
    if article is None or article.status != "failed":
        return False
    article.status, article.error, article.attempts = "pending", None, 0
    return True
