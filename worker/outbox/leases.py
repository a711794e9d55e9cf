"""Sending leases: whether a ``sending`` claim still belongs to a live sender, and the shares a sweep
must deliver again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import select

from worker.store.models import Endpoint as EndpointRow
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


# A claim's holder keeps ``syndicate:sending:<share id>`` alive in Redis while it sends (refreshed
# every SENDING_REFRESH seconds by a thread of its process, so a slow but live request keeps it);
# a holder that died stops refreshing and the key expires. A claim older than SENDING_TTL whose
# key is gone is dead, and recovered within a sweep of that, not after the task time limit (the
# claim lease, 300 s by default). Without Redis the claim lease alone decides, as before.
SENDING_TTL = 20.0
SENDING_REFRESH = 5.0
SENDING_PREFIX = "syndicate:sending:"


class SendingLeases:
    """The sending leases this process holds, kept alive by one daemon thread (see above)."""

    def __init__(self, redis_client: Any) -> None:
        """Keep leases in ``redis_client`` (``None``: no leases, the claim lease alone decides)."""
        self.redis = redis_client
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, share_ids: Iterable[int]) -> None:

        try:
            pipe = self.redis.pipeline(transaction=False)
            for share_id in share_ids:
                pipe.set(SENDING_PREFIX + str(share_id), self._held.get(share_id, "1"), ex=int(SENDING_TTL))
            pipe.execute()
        except redis.RedisError as exc:  # the claim lease still bounds the claim
            log.warning("sending leases not written: %s", exc)

    def _refresh(self) -> None:
        while True:
            time.sleep(SENDING_REFRESH)
            with self._lock:
                held = list(self._held)
            if held:
                self._write(held)

    @contextmanager
    def hold(self, share_id: int) -> Iterator[None]:
        """Hold the lease of ``share_id`` (just claimed) until the block ends (its outcome committed)."""
        if self.redis is None:
            yield
            return
        with self._lock:
            self._held[share_id] = f"{os.getpid()}"
            if self._thread is None or not self._thread.is_alive() or self._thread.ident is None:
                self._thread = threading.Thread(target=self._refresh, name="sending-leases", daemon=True)
                self._thread.start()
        self._write([share_id])
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(share_id, None)

            try:
                self.redis.delete(SENDING_PREFIX + str(share_id))
            except redis.RedisError as exc:
                log.warning("sending lease of share %s not released: %s", share_id, exc)

    def alive(self, share_ids: Sequence[int]) -> set[int] | None:
        """Which of ``share_ids`` have a live lease; None when Redis cannot say (then assume all)."""
        if self.redis is None or not share_ids:
            return None if self.redis is None else set()

        try:
            values = self.redis.mget([SENDING_PREFIX + str(i) for i in share_ids])
        except redis.RedisError:
            return None
        return {i for i, value in zip(share_ids, values, strict=True) if value is not None}


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
