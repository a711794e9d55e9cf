"""Claiming a share for sending: ``pending`` to ``sending`` (committed before the request), for the
version of its story that fits the endpoint best.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from config import Config
from config.model import EndpointBase
from worker.errors import Deferred
from worker.outbox.leases import claim_is_dead
from worker.outbox.skips import record_skips
from worker.outbox.view import share_article_view
from worker.sendslots import SENDING_REFRESH, SENDING_TTL
from worker.share import ShareArticle
from worker.store.models import Article, Share, utcnow
from worker.store.routing import routes
from worker.stories.choice import language_rank, version_order

if TYPE_CHECKING:
    from worker.runtime import Runtime


@dataclass
class Claim:
    share_id: int
    endpoint: str
    view: ShareArticle
    recovering: bool


def oldest_due(session: Session, endpoint: str, now: datetime) -> int | None:
    """The pending share of ``endpoint`` that should go out next: the oldest story first."""
    return session.scalar(
        select(Share.id)
        .join(Article)
        .where(
            Share.endpoint == endpoint,
            Share.status == "pending",
            (Share.not_before.is_(None)) | (Share.not_before <= now),
        )
        .order_by(func.coalesce(Article.published, Article.first_seen_at), Share.id)
        .limit(1)
    )


def claim_share(rt: Runtime, share_id: int, lease: float, config: EndpointBase | None = None) -> Claim | str:
    """Move ``share_id`` to ``sending`` (committed) or say why not: a final status or Deferred.

    A story's share is claimed for the version that fits ``config`` best (:func:`best_version`):
    the claim moves the share to that article in the same UPDATE, so the text, the idempotency key
    and a recovery after a crash all stay with the version chosen here. A recovered claim keeps
    its version (sending another one could post twice).
    """
    now = utcnow()
    with rt.session() as session:
        # The article and its source come with the share: the claim needs them for the view.
        share = session.get(Share, share_id, options=[joinedload(Share.article).joinedload(Article.source)])
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        recovering = False
        if share.status == "sending":
            claimed = share.claimed_at or now
            age = (now - claimed).total_seconds()
            if not claim_is_dead(rt, share_id, age):
                # Look again once a dead holder's lease would have expired (or the claim lease ends).
                wait = lease - age if rt.redis_client is None else max(SENDING_TTL - age, SENDING_REFRESH)
                raise Deferred(min(wait, lease - age), "another worker is sending it")
            recovering = True
        elif share.status != "pending":
            return share.status
        article = share.article
        if not recovering:
            values: dict[str, Any] = {"status": "sending", "claimed_at": now, "attempts": Share.attempts + 1}
            if share.story_id is not None and config is not None:
                article = best_version(session, rt.config, config, share)
            claimed_rows = _claim_pending(session, share, values, article)
            if claimed_rows is None:  # the chosen version has a share of its own after all
                article = share.article
                claimed_rows = _claim_pending(session, share, values, article)
            if claimed_rows == 0:
                session.rollback()
                return "claimed"
        else:
            # Take over a dead worker's claim atomically: two redeliveries must not both recover it.
            taken = session.execute(  # type: ignore[attr-defined]
                update(Share)
                .where(Share.id == share_id, Share.status == "sending", Share.claimed_at == share.claimed_at)
                .values(claimed_at=now, attempts=Share.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 0:
                session.rollback()
                return "claimed"
        # The update changed only the claim columns, which the view does not read: no refresh.
        return Claim(share_id, share.endpoint, share_article_view(article), recovering)


def _claim_pending(session: Session, share: Share, values: dict[str, Any], article: Article) -> int | None:
    """Claim pending ``share`` for ``article``: rows claimed (0: taken), None if that article is taken.

    Moving a story's share to another version keeps ``share_skips`` in step: the version posted
    loses its ``same_story`` skip, the one it replaces gets it.
    """
    statement = (
        update(Share)
        .where(Share.id == share.id, Share.status == "pending")
        .execution_options(synchronize_session=False)
    )
    if article.id == share.article_id:
        return int(session.execute(statement.values(**values)).rowcount)  # type: ignore[attr-defined]
    try:
        with session.begin_nested():
            claimed = int(
                session.execute(statement.values(**values, article_id=article.id)).rowcount  # type: ignore[attr-defined]
            )
    except IntegrityError:  # (article, endpoint) is unique: that version was planned on its own
        return None
    if claimed:
        record_skips(session, article.id, {}, [share.endpoint])
        record_skips(session, share.article_id, {share.endpoint: "same_story"}, [])
    return claimed


def version_key(config: Config, endpoint: EndpointBase, article: Article) -> tuple[Any, ...]:
    """How well ``article`` fits ``endpoint`` (smallest first): its ``languages``, then the main rule."""
    try:
        priority = config.source(article.source.name).priority
    except KeyError:  # a source no longer configured
        priority = 0
    return (
        language_rank(article.language, endpoint.languages),
        *version_order(article, priority, config.stories.languages),
    )


def best_version(session: Session, config: Config, endpoint: EndpointBase, share: Share) -> Article:
    """The ready version of ``share``'s story that ``endpoint`` should post (its own article if none fits).

    Only versions the endpoint's routing rules select, and none that has a share of its own to
    this endpoint (the unique (article, endpoint) index), are considered.
    """
    taken = select(Share.article_id).where(Share.endpoint == share.endpoint, Share.id != share.id)
    versions = session.scalars(
        select(Article)
        .options(joinedload(Article.source))
        .where(Article.story_id == share.story_id, Article.status == "ready", Article.id.not_in(taken))
    ).all()
    fitting = [article for article in versions if routes(config, endpoint, article)]
    if not fitting:
        return share.article
    return min(fitting, key=lambda article: version_key(config, endpoint, article))
