"""What a delivery attempt ends as: an outcome recorded on the share (:func:`finish`), or
:class:`Deferred` (not yet). Also the one place that looks a post up, else marks it uncertain.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from worker import metrics
from worker.share import Endpoint, Preview, ShareResult
from worker.store.models import Endpoint as EndpointRow
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


MAX_ERROR_CHARS = 2000
STATUSES = ("pending", "sending", "sent", "failed", "uncertain")


def short(text: str) -> str:
    """``text`` cut to what a share's ``error`` keeps."""
    return text[:MAX_ERROR_CHARS]


def finish(rt: Runtime, share_id: int, **values: Any) -> str:
    """Record a delivery's outcome on the share and its endpoint row, in one transaction.

    Two UPDATEs and no reads: the share's endpoint and resulting state come back with RETURNING.
    An endpoint row that does not exist (an endpoint no longer configured) is simply not touched.
    """
    with rt.session() as session:
        found = session.execute(
            update(Share)
            .where(Share.id == share_id)
            .values(**values)
            .returning(Share.endpoint, Share.status, Share.error, Share.sent_at)
            .execution_options(synchronize_session=False)
        ).first()
        if found is None:
            raise LookupError(f"no share with id {share_id}")
        endpoint, status, error, sent_at = found
        metrics.count_share(endpoint, status)
        if status == "sent":
            touched: dict[str, Any] = {"last_sent_at": sent_at}
        elif error:
            touched = {"last_error": error, "last_error_at": utcnow()}
        else:
            return str(status)
        session.execute(
            update(EndpointRow)
            .where(EndpointRow.name == endpoint)
            .values(**touched)
            .execution_options(synchronize_session=False)
        )
        return str(status)


def record_sent(rt: Runtime, share_id: int, endpoint: Endpoint, result: ShareResult, text: str) -> str:
    """Record the share ``sent`` where ``result`` says (and the network's quota wait, if it asked)."""
    if endpoint.quota_wait:
        rt.pacer.block(endpoint.name, endpoint.quota_wait)
    error = "the network already had this post (duplicate answer)" if result.duplicate else None
    return finish(
        rt,
        share_id,
        status="sent",
        remote_id=result.remote_id,
        remote_url=result.remote_url,
        sent_at=utcnow(),
        text=text,
        error=error,
    )


def look_up(
    rt: Runtime, share_id: int, endpoint: Endpoint, preview: Preview, key: str, *, unknown: str | None
) -> str | None:
    """Look the post of ``share_id`` up on its network, else mark the share uncertain.

    Found: recorded ``sent`` (its status is returned). Not there: None (the caller decides). A network
    that cannot look (NotImplementedError) leaves the share ``uncertain``: with ``unknown`` as its error,
    or as it is when ``unknown`` is None. A :class:`~worker.errors.ShareError` of the lookup propagates.
    """
    try:
        found = endpoint.lookup(preview, key)
    except NotImplementedError:
        if unknown is None:
            return "uncertain"
        return finish(rt, share_id, status="uncertain", error=unknown)
    if found is None:
        return None
    log.info("%s: share %s: the post is on the network (%s)", endpoint.name, share_id, found.remote_id)
    return record_sent(rt, share_id, endpoint, found, preview.text)
