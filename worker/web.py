"""The HTTP app: feeds with conditional GET, the ingest API, status, health and the offline demo site.

Feeds take a raw ASGI fast path (:class:`FeedFastPath`) in front of FastAPI's routing: a hit is
answered from the process's :class:`~worker.feedcache.FeedCache` with prebuilt headers, no database
and usually no Redis round trip; a miss falls through to the FastAPI route, which explains the 404.
"""

from __future__ import annotations

import hmac
import html
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.feedcache import CachedFeed, FeedCache
from worker.pipeline import MAX_URL_CHARS, PushedArticle, ingest_article
from worker.runtime import Runtime, get_runtime
from worker.status import snapshot

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).with_name("demo")
DEMO_ORIGIN = "http://127.0.0.1:8000"
MAX_INGEST_BYTES = 5_000_000
# A request body may hold both HTML fields at their limit plus the small ones; nothing more is read.
MAX_BODY_BYTES = 2 * MAX_INGEST_BYTES + 1_000_000
FEED_FORMATS = {"rss", "atom", "json"}


class IngestRequest(BaseModel):
    """The body of ``POST /api/articles``: a URL, and optionally its HTML or its fields."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    html: str | None = Field(default=None, max_length=MAX_INGEST_BYTES)
    title: str | None = Field(default=None, max_length=1000)
    content_html: str | None = Field(default=None, max_length=MAX_INGEST_BYTES)
    summary: str | None = Field(default=None, max_length=5000)
    published: datetime | None = None
    authors: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    category: str | None = Field(default=None, max_length=255)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    image: AnyHttpUrl | None = None
    language: str | None = Field(default=None, max_length=16)
    source: str | None = Field(default=None, max_length=63)

    @field_validator("url")
    @classmethod
    def _url_length(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > MAX_URL_CHARS:
            raise ValueError(f"url is longer than {MAX_URL_CHARS} characters")
        return value

    @field_validator("published")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("published needs a timezone, e.g. 2019-03-06T10:00:00Z")
        return value


class BodyLimitMiddleware:
    """Answer 413 to request bodies over ``limit`` bytes instead of reading (and parsing) them whole.

    A declared Content-Length over the limit is refused before anything is read; a body sent without
    one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"request body too large: the limit is {self.limit} bytes"

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": self._detail()}, status_code=413)


def feed_cache(app: Any) -> FeedCache:
    """The app's feed cache, made on first use (the runtime may be the process-wide one)."""
    cache: FeedCache | None = app.state.feed_cache
    if cache is None:
        cache = app.state.feed_cache = FeedCache(app.state.runtime or get_runtime())
    return cache


def _split_feed_path(path: str) -> tuple[str, str] | None:
    name, dot, fmt = path[len("/feeds/") :].rpartition(".")
    if not dot or fmt not in FEED_FORMATS or not name or "/" in name:
        return None
    return name, fmt


def _request_validators(scope: Scope) -> tuple[bytes, str | None, str | None]:
    accept, inm, ims = b"", None, None
    for key, value in scope["headers"]:
        if key == b"accept-encoding":
            accept = value
        elif key == b"if-none-match":
            inm = value.decode("latin-1")
        elif key == b"if-modified-since":
            ims = value.decode("latin-1")
    return accept, inm, ims


class FeedFastPath:
    """Answer ``GET``/``HEAD /feeds/<name>.<fmt>`` from memory before FastAPI routes anything.

    Routing, dependency injection and a Response object cost several times what the answer itself
    does; here a 200 or 304 is two ``send`` calls with headers built at render time. Anything not
    in the cache (unknown feed, not rendered yet, another path) goes on to the app unchanged.
    """

    def __init__(self, app: ASGIApp, web_app: FastAPI) -> None:
        self.app = app
        self.web_app = web_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/feeds/") and scope["method"] in HEAD_GET:
            entry = await self._lookup(scope["path"])
            if entry is not None:
                accept, inm, ims = _request_validators(scope)
                status, headers, body = entry.answer(accept, inm, ims, scope["method"] == "HEAD")
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _lookup(self, path: str) -> CachedFeed | None:
        parsed = _split_feed_path(path)
        if parsed is None:
            return None
        name, fmt = parsed
        cache = feed_cache(self.web_app)
        if not cache.knows(name):
            return None
        entry, stale = cache.peek(name, fmt)
        if stale:
            # Redis (and, rarely, the database) is read off the event loop.
            entry = await run_in_threadpool(cache.refreshed, name, fmt)
        return entry


HEAD_GET = frozenset({"GET", "HEAD"})


def current_runtime(request: Request) -> Runtime:
    """The runtime given to :func:`create_web_app`, else the process-wide one."""
    return request.app.state.runtime or get_runtime()


RT = Annotated[Runtime, Depends(current_runtime)]


def require_token(r: RT, authorization: Annotated[str | None, Header()] = None) -> None:
    """Check the ingest bearer token; runs before the body is validated, so strangers learn nothing."""
    token = r.config.api.token.get_secret_value() if r.config.api.token else ""
    if not token:
        raise HTTPException(503, "ingest is disabled: set api.token in the config")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def refuse_unfetchable(r: Runtime, field: str, url: str) -> None:
    """Answer 422 for a pushed URL the fetcher would refuse as an ingest URL.

    Ingest URLs obey ``fetch.allow_hosts`` and can never reach Syndicate's own web app, Flower or
    Redis ports on this host (see :mod:`worker.fetch.http`); the fetch checks again, on every
    redirect hop. A host that does not resolve now is left for the fetch to retry.
    """
    from worker.errors import BlockedURL, TransientFetchError

    try:
        r.fetcher.check(url, ingest=True)
    except BlockedURL as exc:
        raise HTTPException(422, f"{field}: {exc}") from None
    except TransientFetchError:
        pass


def create_web_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the FastAPI app; ``runtime`` defaults to the process-wide one."""
    app = FastAPI(title="Syndicate", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.runtime = runtime
    app.state.feed_cache = None
    app.add_middleware(BodyLimitMiddleware, limit=MAX_BODY_BYTES)
    # Added last, so it is the outermost of ours: feed hits skip the body limit and routing.
    app.add_middleware(FeedFastPath, web_app=app)

    @app.get("/healthz")
    def healthz(r: RT) -> JSONResponse:
        """Liveness and readiness: the database and Redis both answer."""
        checks: dict[str, str] = {}
        try:
            with r.session() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            import redis

            redis.Redis.from_url(r.settings.effective_redis_url, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)

    @app.api_route("/feeds/{name}.{fmt}", methods=["GET", "HEAD"])
    def feed(name: str, fmt: str, request: Request) -> Response:
        """A stored feed render with ETag/Last-Modified, 304, gzip/brotli and WebSub ``Link`` headers.

        Hits are answered by :class:`FeedFastPath` before routing; this route documents the path
        and explains misses (and answers a hit that raced in after the fast path looked).
        """
        if fmt not in FEED_FORMATS:
            raise HTTPException(404, f"unknown feed format {fmt!r}; use rss, atom or json")
        entry = feed_cache(request.app).get(name, fmt)
        if entry is None:
            raise HTTPException(404, f"no feed named {name!r} has been rendered")
        accept, inm, ims = _request_validators(request.scope)
        status, headers, body = entry.answer(accept, inm, ims, request.method == "HEAD")
        response = Response(content=body, status_code=status)
        response.raw_headers = list(headers)
        return response

    @app.post("/api/articles", status_code=202, dependencies=[Depends(require_token)])
    def ingest(payload: IngestRequest, r: RT) -> dict[str, Any]:
        """Accept a pushed article; it flows through the same pipeline as crawled ones."""
        if payload.source and payload.source not in {s.name for s in r.config.sources}:
            raise HTTPException(422, f"source: no source named {payload.source!r}")
        if payload.html is None and payload.title is None:  # only then is the URL itself fetched
            refuse_unfetchable(r, "url", str(payload.url))
        if payload.image:
            refuse_unfetchable(r, "image", str(payload.image))
        item = PushedArticle(
            url=str(payload.url),
            html=payload.html,
            title=payload.title,
            content_html=payload.content_html,
            summary=payload.summary,
            published=payload.published,
            authors=tuple(payload.authors),
            category=payload.category,
            tags=tuple(payload.tags),
            image=str(payload.image) if payload.image else None,
            language=payload.language,
            source=payload.source,
        )
        article_id, created = ingest_article(r, item)
        from worker.tasks import process_article

        try:
            process_article.delay(article_id)
        except Exception as exc:  # the article is stored; the sweeper re-enqueues pending ones
            log.warning("could not enqueue article %s: %s", article_id, exc)
            return {"id": article_id, "created": created, "status": "stored, queue unavailable"}
        return {"id": article_id, "created": created, "status": "queued"}

    # ``path``: a ref may be the article URL, slashes and all.
    @app.get("/api/articles/{ref:path}/preview", dependencies=[Depends(require_token)])
    def preview(ref: str, r: RT, endpoint: str | None = None) -> list[dict[str, Any]]:
        """What each endpoint (or ``?endpoint=NAME``) would receive for an article; nothing is sent."""
        from worker.outbox import preview_article

        try:
            return preview_article(r, ref, endpoint)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    @app.get("/api/status")
    def status(r: RT) -> dict[str, Any]:
        """The status snapshot as JSON."""
        with r.session() as session:
            return snapshot(session, r.config, r.settings.base_url)

    @app.get("/", response_class=HTMLResponse)
    def index(r: RT) -> str:
        """A small status page for humans."""
        with r.session() as session:
            snap = snapshot(session, r.config, r.settings.base_url)
        return render_status_page(snap)

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

    add_discovery_routes(app)
    return app


def feed_links(config: Any, base_url: str) -> list[Any]:
    """Every configured feed as a :class:`feeds.opml.FeedLink` (title and URL without ``.fmt``)."""
    from feeds.opml import FeedLink

    return [
        FeedLink(
            title=f.title,
            url_base=f"{base_url}/feeds/{f.name}",
            home_url=base_url + "/",
            description=f.description,
        )
        for f in config.feeds
    ]


def autodiscovery_links(config: Any, base_url: str) -> str:
    """The ``<link rel="alternate">`` tags (every feed, every format, plus the OPML list) for a page head."""
    from feeds.opml import discovery_links
    from worker.pipeline import OPML_PATH

    return discovery_links(feed_links(config, base_url), base_url + OPML_PATH)


def add_discovery_routes(app: FastAPI) -> None:
    """``/feeds.opml``, the feeds' XSL stylesheet and the RFC 5005 archive pages."""
    from feeds import stylesheet
    from feeds.http import cache_headers, is_not_modified
    from feeds.opml import CONTENT_TYPE as OPML_TYPE
    from feeds.opml import render_opml
    from worker.pipeline import OPML_PATH, STYLESHEET_PATH, render_archive

    @app.get(OPML_PATH)
    def opml(r: RT) -> Response:
        """An OPML 2.0 list of every configured feed (one outline each, its RSS URL)."""
        base = r.settings.base_url
        body = render_opml("Syndicate feeds", feed_links(r.config, base))
        return Response(content=body, media_type=OPML_TYPE)

    @app.get(STYLESHEET_PATH)
    def feed_stylesheet() -> Response:
        """The XSL that makes a feed opened in a browser read as a page."""
        return Response(
            content=stylesheet.STYLESHEET.encode("utf-8"),
            media_type=stylesheet.CONTENT_TYPE,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.api_route("/feeds/{name}/archive/{page}.{fmt}", methods=["GET", "HEAD"])
    def feed_archive(name: str, page: int, fmt: str, request: Request, r: RT) -> Response:
        """A full RFC 5005 archive page of a feed (1 = oldest); its items never change."""
        if fmt not in FEED_FORMATS:
            raise HTTPException(404, f"unknown feed format {fmt!r}; use rss, atom or json")
        out = render_archive(r, name, page, fmt)
        if out is None:
            raise HTTPException(404, f"feed {name!r} has no archive page {page}")
        headers = cache_headers(out.etag, out.last_modified)
        if is_not_modified(request.headers, out.etag, out.last_modified):
            return Response(status_code=304, headers=headers)
        return Response(content=out.body, media_type=out.content_type, headers=headers)


def render_status_page(snap: dict[str, Any]) -> str:
    """The status snapshot as a plain HTML page, its ``<head>`` advertising every feed for autodiscovery.

    The ``<link rel="alternate">`` tags are the ones :func:`autodiscovery_links` writes, built from the
    feed URLs the snapshot already carries (the snapshot was made from the same config and base URL).
    """
    from feeds.opml import FeedLink, discovery_links
    from worker.pipeline import OPML_PATH

    e = html.escape
    links = [
        FeedLink(title=f["title"], url_base=f["urls"]["rss"].removesuffix(".rss")) for f in snap["feeds"]
    ]
    # Feed URLs are "<base>/feeds/<name>.<fmt>": the OPML list sits at the same base.
    base = links[0].url_base.rsplit("/feeds/", 1)[0] if links else ""
    head_links = discovery_links(links, base + OPML_PATH if links else None)
    rows = "".join(
        f"<tr><td>{e(s['name'])}</td><td>{e(s['kind'])}</td><td>{s['articles']}</td>"
        f"<td>{e(s['last_crawl_at'] or 'never')}</td><td>{e(s['last_error'] or '')}</td></tr>"
        for s in snap["sources"]
    )
    feeds = "".join(
        f"<li>{e(f['title'])} ({f['items']} items): "
        + " ".join(f'<a href="{e(u)}">{fmt}</a>' for fmt, u in f["urls"].items())
        + "</li>"
        for f in snap["feeds"]
    )
    endpoints = "".join(
        f"<li>{e(p['name'])} ({e(p['kind'])}): "
        f"{p['sent']} sent, {p['pending']} pending, {p['failed']} failed, {p['uncertain']} uncertain"
        + (
            ""
            if p["enabled"]
            else f" <strong>disabled</strong>: {e(p['disabled_reason'] or 'in the config')}"
        )
        + (f"<br><small>last error: {e(p['last_error'])}</small>" if p["last_error"] else "")
        + "</li>"
        for p in snap["endpoints"]
    )
    shares = "".join(
        f"<tr><td>{e(p['endpoint'])}</td><td>{e(p['status'])}</td><td>{e(p['title'])}</td><td>"
        + (
            f'<a href="{e(p["remote_url"])}">{e(p["remote_url"])}</a>'
            if p["remote_url"]
            else e(p["remote_id"] or "")
        )
        + f"</td><td>{e(p['error'] or '') if p['status'] != 'sent' else ''}</td></tr>"
        for p in snap.get("recent_shares", [])
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Syndicate</title>\n"
        f"{head_links}\n</head><body>"
        f"<h1>Syndicate</h1><p>{snap['articles']['total']} articles.</p>"
        "<h2>Sources</h2><table><tr><th>name</th><th>kind</th><th>articles</th><th>last crawl</th>"
        f"<th>last error</th></tr>{rows}</table><h2>Feeds</h2><ul>{feeds}</ul>"
        f"<h2>Endpoints</h2><ul>{endpoints}</ul>"
        "<h2>Recent shares</h2><table><tr><th>endpoint</th><th>status</th><th>article</th><th>post</th>"
        f"<th>error</th></tr>{shares}</table></body></html>"
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
