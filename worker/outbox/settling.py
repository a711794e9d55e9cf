"""Settling ``uncertain`` shares by looking their post up on the network, with no operator."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from worker.errors import Deferred, ShareError
from worker.outbox.outcome import finish, look_up
from worker.outbox.retry import absent_after, settle_wait
from worker.outbox.view import share_article_view
from worker.share import ENDPOINTS, idempotency_key
from worker.store.models import Article, Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


# Beat's pass over uncertain shares whose scheduled check was lost (a flushed Redis, a dead worker).
SETTLE_INTERVAL = 60.0
SETTLING_NOTE = "no answer in time; looking the post up automatically"
OPERATOR_NOTE = "needs an operator"


def settle_share(rt: Runtime, share_id: int) -> str:
    """Look an ``uncertain`` share's post up on its network; return the share's status afterwards.

    Found: ``sent`` with its remote id and URL. Not found once :func:`absent_after` has passed since
    the claim: back to ``pending`` (the caller delivers it; the idempotency key still applies).
    Otherwise the next look is scheduled (``not_before``) and :class:`Deferred` is raised. A network
    without a lookup leaves the share ``uncertain`` for an operator.
    """
    now = utcnow()
    with rt.session() as session:
        share = session.get(Share, share_id, options=[joinedload(Share.article).joinedload(Article.source)])
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        if share.status != "uncertain":
            return share.status
        name, claimed, not_before = share.endpoint, share.claimed_at or share.created_at, share.not_before
        view = share_article_view(share.article)
    try:
        config = rt.config.endpoint(name)
    except KeyError:
        return "uncertain"
    endpoint = rt.endpoint(name)
    if not endpoint.can_look_up:
        return "uncertain"
    if not_before is not None and not_before > now:
        raise Deferred((not_before - now).total_seconds(), "the next lookup of an uncertain post")
    try:
        preview = endpoint.render(view)
        settled = look_up(rt, share_id, endpoint, preview, idempotency_key(view, config.name), unknown=None)
    except ShareError as exc:
        log.info("%s: share %s: lookup failed, trying again later: %s", name, share_id, exc)
        settled, failed = None, True
    else:
        failed = False
    if settled is not None:
        return settled
    age = (now - claimed).total_seconds()
    if not failed and age >= absent_after(endpoint):
        log.info("%s: share %s: the post is not on the network; sending it again", name, share_id)
        finish(
            rt,
            share_id,
            status="pending",
            not_before=None,
            error="looked up after a lost answer: not on the network; sending again",
        )
        return "pending"
    wait = settle_wait(age)
    with rt.session() as session:  # only the next look: no new outcome to count or report
        session.execute(
            update(Share)
            .where(Share.id == share_id, Share.status == "uncertain")
            .values(not_before=now + timedelta(seconds=wait))
            .execution_options(synchronize_session=False)
        )
    raise Deferred(wait, "the post is not visible yet; looking again")


def due_uncertain(rt: Runtime) -> list[int]:
    """Uncertain shares of networks that can look posts up whose lookup is overdue (its message lost)."""
    kinds = {name for name, cls in ENDPOINTS.items() if cls.can_look_up}
    names = [e.name for e in rt.config.endpoints if e.kind in kinds]
    if not names:
        return []
    overdue = utcnow() - timedelta(seconds=SETTLE_INTERVAL)
    with rt.session() as session:
        return list(
            session.scalars(
                select(Share.id)
                .where(
                    Share.status == "uncertain",
                    Share.endpoint.in_(names),
                    (Share.not_before.is_(None)) | (Share.not_before < overdue),
                )
                .order_by(Share.id)
                .limit(500)
            )
        )


def settle_beat_entry() -> dict[str, Any]:
    """Beat's entry for :func:`due_uncertain`: every :data:`SETTLE_INTERVAL` seconds."""
    return {
        "task": "syndicate.settle_uncertain",
        "schedule": SETTLE_INTERVAL,
        "options": {"expires": SETTLE_INTERVAL},
    }
