"""Enabling and disabling an endpoint (its row and token store live in :mod:`worker.store.endpoints`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from worker.store.endpoints import sync_endpoints
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


def set_endpoint_enabled(rt: Runtime, name: str, enabled: bool, reason: str | None = None) -> list[int]:
    """Enable or disable endpoint ``name``; return the pending shares to deliver on enabling."""
    rt.config.endpoint(name)  # KeyError for an unknown name
    with rt.session() as session:
        row = sync_endpoints(session, rt.config)[name]
        if enabled:
            row.disabled_at, row.disabled_reason = None, None
            return list(
                session.scalars(
                    select(Share.id)
                    .where(Share.endpoint == name, Share.status == "pending")
                    .order_by(Share.id)
                )
            )
        row.disabled_at, row.disabled_reason = utcnow(), reason or "disabled by an operator"
        return []


def disable_endpoint(rt: Runtime, name: str, reason: str) -> None:
    with rt.session() as session:
        row = sync_endpoints(session, rt.config).get(name)
        if row is not None and row.disabled_at is None:
            row.disabled_at, row.disabled_reason = utcnow(), reason
    log.error("endpoint %s disabled: %s (re-enable with `syndicate endpoint enable %s`)", name, reason, name)
