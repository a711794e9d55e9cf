"""The status routes: the page ``/`` and ``GET /api/status``, both from one snapshot."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from worker import redisclient, storage
from worker.ops.status import StatusSnapshot, snapshot
from worker.runtime import Runtime
from worker.web.auth import RT
from worker.web.statuspage import render_status_page


def add_status_routes(app: FastAPI) -> None:
    """The status page ``/`` and ``GET /api/status`` (the retry buttons post to :mod:`worker.web.api`).

    The snapshot reads Redis for feed request counts and worker/beat liveness; without Redis those
    parts say "unknown" and the rest still shows.
    """

    def current_snapshot(r: Runtime) -> dict[str, Any]:
        # A runtime built without a client (tests, embedding) still reads counts and heartbeats.
        client = r.redis_client or redisclient.connect(r.settings.effective_redis_url, socket_timeout=2)
        try:
            with r.session() as session:
                snap = snapshot(session, r.config, r.settings.base_url, redis_client=client)
            return {**snap, "storage": storage.storage_state(r.settings, client)}
        finally:
            if client is not r.redis_client:
                client.close()

    @app.get("/api/status", response_model=StatusSnapshot)
    def status(r: RT) -> dict[str, Any]:
        """Sources, feeds, endpoints, recent failures and worker/beat liveness (what the page shows)."""
        return current_snapshot(r)

    @app.get("/", response_class=HTMLResponse)
    def index(r: RT) -> str:
        """The status page for humans: refreshes itself, readable on a phone, retry buttons."""
        return render_status_page(current_snapshot(r))
