"""Endpoints in the database: their rows (``added_at``, disabled state) and their run-time state
(:class:`DatabaseTokenStore`).
"""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config
from worker.store.models import Endpoint as EndpointRow
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


def sync_endpoints(session: Session, config: Config) -> dict[str, EndpointRow]:
    """Make sure every configured endpoint has its row (``added_at`` = first time seen)."""
    rows = {row.name: row for row in session.scalars(select(EndpointRow))}
    for endpoint in config.endpoints:
        row = rows.get(endpoint.name)
        if row is None:
            row = EndpointRow(name=endpoint.name, kind=endpoint.kind, state={})
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:  # another process added it first
                row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint.name))
                assert row is not None
            rows[endpoint.name] = row
        elif row.kind != endpoint.kind:
            # Another network under the same name: its tokens mean nothing there.
            row.kind, row.state = endpoint.kind, {}
    return rows


class DatabaseTokenStore:
    """The :class:`~worker.share.TokenStore` of production: ``endpoints.state`` in the database.

    ``save`` merges: it applies only the keys this process changed or removed since its last
    ``load`` onto the row as it is now, under a row lock, so two workers that each store
    something else (Mastodon's instance limits, a Bluesky session) do not undo each other.
    ``lock`` is a Redis lock shared by every worker (a process lock without Redis).
    """

    def __init__(self, runtime: Runtime) -> None:
        """Store state through ``runtime``'s sessions (and lock through its Redis)."""
        self.runtime = runtime
        self._loaded: dict[str, dict[str, Any]] = {}
        self._local = threading.RLock()

    def load(self, endpoint: str) -> dict[str, Any]:
        """The stored state of ``endpoint`` (empty if none)."""
        with self.runtime.session() as session:
            row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint))
            state = dict(row.state or {}) if row is not None else {}
        self._loaded[endpoint] = copy.deepcopy(state)
        return state

    def cached(self, endpoint: str) -> dict[str, Any]:
        """The state as last loaded or saved by this process (no database round trip)."""
        if endpoint not in self._loaded:
            return self.load(endpoint)
        return copy.deepcopy(self._loaded[endpoint])

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Merge this process's changes to ``endpoint``'s state into the row (committed at once)."""
        base = self._loaded.get(endpoint, {})
        with self.runtime.session() as session:
            # Take the row's write lock first (PostgreSQL row lock; SQLite's write lock).
            session.execute(
                update(EndpointRow).where(EndpointRow.name == endpoint).values(kind=EndpointRow.kind)
            )
            row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint))
            if row is None:
                row = sync_endpoints(session, self.runtime.config).get(endpoint)
                if row is None:
                    return
            current = dict(row.state or {})
            for key in base:
                if key not in state:
                    current.pop(key, None)
            for key, value in state.items():
                if key not in base or base[key] != value:
                    current[key] = value
            row.state = current
        self._loaded[endpoint] = copy.deepcopy(current)

    def lock(self, endpoint: str) -> AbstractContextManager[object]:
        """A lock on ``endpoint``'s state held across processes (Redis), for at most a minute."""
        client = self.runtime.redis_client
        if client is None:
            return self._local
        return client.lock(f"syndicate:endpoint-lock:{endpoint}", timeout=60, blocking_timeout=30)


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
