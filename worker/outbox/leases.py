"""Sending leases: whether a ``sending`` claim still belongs to a live sender, and the shares a sweep
must deliver again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from worker.sendslots import SENDING_TTL
from worker.store.models import Endpoint as EndpointRow
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


def claim_is_dead(rt: Runtime, share_id: int, age: float) -> bool:
    """Whether a ``sending`` claim ``age`` seconds old can no longer belong to a live sender."""
    if age >= rt.claim_lease:
        return True
    if age < SENDING_TTL:
        return False  # its holder may not have written its lease yet
    alive = rt.sending_leases.alive([share_id])
    return alive is not None and share_id not in alive


def stale_shares(rt: Runtime, older_than: timedelta) -> list[int]:
    """Shares a sweep may have to deliver again: due and pending for ``older_than``, or claimed and dead.

    Pending shares count once created ``older_than`` ago and due (``not_before`` passed); ``sending``
    ones once their claim is older than the claim lease (no live task can hold it). Shares of an
    endpoint an operator or a permanent error disabled are held on purpose and left out.
    """
    now = utcnow()
    cutoff = now - older_than
    lease_cutoff = now - timedelta(seconds=rt.claim_lease)
    # Younger claims count too once their sending lease is gone (see SendingLeases).
    young_cutoff = now - timedelta(seconds=SENDING_TTL) if rt.redis_client is not None else lease_cutoff
    disabled = select(EndpointRow.name).where(EndpointRow.disabled_at.is_not(None))
    with rt.session() as session:
        rows = session.execute(
            select(Share.id, Share.status, Share.claimed_at)
            .where(
                (
                    (Share.status == "pending")
                    & (Share.created_at < cutoff)
                    & ((Share.not_before.is_(None)) | (Share.not_before <= now))
                )
                | ((Share.status == "sending") & (Share.claimed_at < young_cutoff)),
                Share.endpoint.not_in(disabled),
            )
            .order_by(Share.id)
            .limit(500)
        ).all()
    young = [row.id for row in rows if row.status == "sending" and row.claimed_at >= lease_cutoff]
    alive = rt.sending_leases.alive(young) if young else set()
    held = set(young) if alive is None else alive
    return [row.id for row in rows if row.id not in held]
