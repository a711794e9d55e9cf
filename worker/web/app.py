"""The FastAPI app: its middleware stack, health, metrics, the offline demo site and API docs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from worker import redisclient, storage
from worker.ops import heartbeat
from worker.ops.metrics_collector import render_metrics
from worker.runtime import Runtime
from worker.web.api import add_api_routes
from worker.web.auth import METRICS_PATH, RT
from worker.web.feeds import add_feed_routes
from worker.web.handlers import storage_full_handler, validation_error_handler
from worker.web.headers import SecurityHeaders
from worker.web.middleware import MAX_BODY_BYTES, AuthGate, BodyLimitMiddleware, FeedFastPath
from worker.web.status import add_status_routes

DEMO_DIR = Path(__file__).parent.parent / "demo"
DEMO_ORIGIN = "http://127.0.0.1:8000"

API_DESCRIPTION = (
    "Push articles into the pipeline, preview what each endpoint would receive, read the status, "
    "retry failed articles and shares. Endpoints marked with a lock take the config's `api.token` "
    "as a bearer token."
)


def create_web_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the FastAPI app; ``runtime`` defaults to the process-wide one."""
    app = FastAPI(
        title="Syndicate",
        version="0.1.0",
        description=API_DESCRIPTION,
        docs_url=None,  # add_docs_routes: served offline
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.state.feed_cache = None
    app.state.started = time.monotonic()  # /healthz: the start-up grace for workers and beat
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DBAPIError, storage_full_handler)
    app.add_exception_handler(OSError, storage_full_handler)
    app.add_middleware(BodyLimitMiddleware, limit=MAX_BODY_BYTES)
    # Outside the body limit: a stranger's body is refused unread, whatever its size.
    app.add_middleware(AuthGate, web_app=app)
    # Added after the body limit and the gate: feed hits skip both and routing.
    app.add_middleware(FeedFastPath, web_app=app)
    # The outermost: every answer, feed hits and refusals included, carries the security headers.
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz")
    def healthz(r: RT, request: Request, scope: Literal["all", "web"] = "all") -> JSONResponse:
        """Liveness and readiness: the database and Redis answer, a worker and beat sent heartbeats.

        503 "degraded" when a check fails, no worker beat within ``heartbeat.STALE_AFTER`` s or beat
        did not; a worker or beat not seen yet in the first ``heartbeat.STARTUP_GRACE`` s of this
        process is "starting" (``syndicate up`` and compose start them together). ``?scope=web``
        checks only what this web process needs (a container healthcheck that must not fail
        because a worker elsewhere is down); the heartbeats are still reported.
        """
        checks: dict[str, str] = {}
        try:
            with r.session() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        live: dict[str, Any] = {"workers": [], "beat": None}
        client = redisclient.connect(r.settings.effective_redis_url, socket_timeout=2)
        disk = storage.storage_state(r.settings, client)
        try:
            client.ping()
            checks["redis"] = "ok"
            live = heartbeat.liveness(client)
            checks.update(heartbeat.health_checks(live, time.monotonic() - request.app.state.started))
        except Exception as exc:
            checks.setdefault("redis", f"error: {type(exc).__name__}")
            checks.update(worker="unknown", beat="unknown")
        finally:
            client.close()
        checks["storage"] = "ok" if disk["state"] == "ok" else f"full: {disk['reason']}"
        counted = ("database", "redis", "storage") if scope == "web" else tuple(checks)
        ok = all(checks[k] in ("ok", "starting") for k in counted)
        body = {"status": "ok" if ok else "degraded", **checks, "liveness": live, "storage_detail": disk}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get(
        METRICS_PATH,
        response_class=Response,
        responses={401: {"description": "`api.metrics_token` is set and the request does not carry it"}},
    )
    def prometheus_metrics(r: RT) -> Response:
        """Prometheus metrics for the whole deployment (every worker and web process; see README, Metrics)."""
        body, content_type = render_metrics(r)
        return Response(content=body, media_type=content_type)

    add_feed_routes(app)
    add_api_routes(app)

    @app.get("/demo/", response_class=HTMLResponse)
    @app.get("/demo/{year}/{month}/{slug}.html", response_class=HTMLResponse)
    def demo(request: Request, year: str = "", month: str = "", slug: str = "index") -> Response:
        """The offline demo site that the example config crawls."""
        path = DEMO_DIR / f"{slug}.html"
        if not slug.replace("-", "").isalnum() or not path.is_file():
            raise HTTPException(404, "no such demo page")
        origin = str(request.base_url).rstrip("/")
        body = path.read_text(encoding="utf-8").replace(DEMO_ORIGIN, origin)
        return HTMLResponse(body)

    add_status_routes(app)
    add_docs_routes(app)
    return app


DOCS_STATIC = "/api/docs/static"


def add_docs_routes(app: FastAPI) -> None:
    """``/api/docs``: Swagger UI from the ``swagger-ui-bundle-v2`` package, so it works offline.

    FastAPI's own page loads Swagger UI from a CDN; here every asset is served from ``DOCS_STATIC``.
    """
    app.mount(DOCS_STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/api/openapi.json"),
            title="Syndicate API",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon-32x32.png",
        )


def server_options(log_level: str = "info") -> dict[str, Any]:
    """The uvicorn settings the app is meant to run with in production (``syndicate web``).

    httptools and uvloop are used when installed (uvicorn's ``auto``; measured against h11 and asyncio
    here: see ``bench/feeds.py``). The per-request access log is off: at thousands of feed polls a
    second it costs more than serving them (a static server in front logs them anyway).
    """
    return {
        "http": "auto",
        "loop": "auto",
        "access_log": False,
        "log_level": log_level.lower(),
        "backlog": 4096,
        "timeout_keep_alive": 30,
        "server_header": False,
    }
