"""The HTTP app: feeds with conditional GET, the ingest API, status, health and the offline demo site.

Feeds take a raw ASGI fast path (:class:`FeedFastPath`) in front of FastAPI's routing: a hit is
answered from the process's :class:`~worker.feedcache.FeedCache` with prebuilt headers, no database
and usually no Redis round trip; a miss falls through to the FastAPI route, which explains the 404.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import metrics, storage
from worker.errors import StoryChangeError
from worker.feedcache import CachedFeed, FeedCache
from worker.ingest import PushedArticle, ingest_article
from worker.ops import heartbeat
from worker.ops.status import snapshot
from worker.runtime import Runtime, get_runtime
from worker.store.models import MAX_URL_CHARS
from worker.stories import edit
from worker.stories.views import recent_stories, story_detail
from worker.webheaders import SecurityHeaders

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).with_name("demo")
DEMO_ORIGIN = "http://127.0.0.1:8000"
MAX_INGEST_BYTES = 5_000_000
# A request body may hold both HTML fields at their limit plus the small ones; nothing more is read.
MAX_BODY_BYTES = 2 * MAX_INGEST_BYTES + 1_000_000
# After a 413, what the client is still sending is read and dropped for this long at most, and (for a
# body without a declared length) up to this many bytes, so that the client can read the 413 before
# the hang-up (see BodyLimitMiddleware).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4_000_000
FEED_FORMATS = {"rss", "atom", "json"}


_RFC3339_START = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")


class IngestRequest(BaseModel):
    """The body of ``POST /api/articles``: a URL, and optionally its HTML or its fields."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(json_schema_extra={"maxLength": MAX_URL_CHARS})  # checked by _url_length
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

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # JSON may carry "\\u0000", which PostgreSQL's text columns refuse: a 422 here, not a failed INSERT.
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "\x00" in item:
                raise ValueError("text must not contain NUL characters")
        return value

    @field_validator("url")
    @classmethod
    def _url_length(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > MAX_URL_CHARS:
            raise ValueError(f"url is longer than {MAX_URL_CHARS} characters")
        return value

    @field_validator("published", mode="before")
    @classmethod
    def _date_text(cls, value: Any) -> Any:
        # pydantic would read a number (or "0") as Unix time; the schema says RFC 3339 (found by the fuzz).
        if value is not None and not isinstance(value, datetime) and not _RFC3339_START.match(str(value)):
            raise ValueError("published must be an RFC 3339 date-time string, e.g. 2019-03-06T10:00:00Z")
        return value

    @field_validator("published")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("published needs a timezone, e.g. 2019-03-06T10:00:00Z")
        return value


class IngestAccepted(BaseModel):
    """The 202 answer of ``POST /api/articles``: the stored article's id and whether it was new."""

    id: int
    created: bool
    status: Literal["queued", "stored, queue unavailable"]


class ErrorMessage(BaseModel):
    """An error answer with one message (401, 413, 503 and the ingest rules' own 422s)."""

    detail: str


class FieldError(BaseModel):
    """One invalid part of a request: where, what is wrong, and at most a short excerpt of the value."""

    loc: list[str | int]
    msg: str
    type: str
    input_excerpt: str | None = None


class ValidationErrors(BaseModel):
    """A 422 answer: the first few field errors (``errors`` counts them all) or one rule's message."""

    detail: list[FieldError] | str
    errors: int = 0


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body could not be read (not UTF-8, nested too deep)"},
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token (checked before the body)"},
    413: {"model": ErrorMessage, "description": "The body is over the size limit"},
    422: {"model": ValidationErrors, "description": "The body is not a valid article"},
    503: {
        "model": ErrorMessage,
        "description": "Ingest is disabled (no api.token in the config), or the disk is full: nothing was "
        "stored, send it again after Retry-After",
    },
}

# 422 answers stay small whatever was sent: a few errors, each with short excerpts.
MAX_REPORTED_ERRORS = 10
EXCERPT_CHARS = 40
LOC_PART_CHARS = 64
MSG_CHARS = 300
SECRET_WORDS = ("token", "secret", "passw", "authoriz", "api_key", "apikey", "cookie", "credential", "key")


def _clip(text: str, limit: int) -> str:
    clipped = text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
    # A lone surrogate from JSON ("\\ud800") cannot be encoded in the UTF-8 answer: shown escaped.
    return clipped.encode("utf-8", "backslashreplace").decode("utf-8")


def _looks_secret(loc: list[str | int]) -> bool:
    return any(isinstance(part, str) and any(w in part.lower() for w in SECRET_WORDS) for part in loc)


def value_excerpt(value: Any) -> str:
    """A short description of a bad value: strings and numbers clipped, containers only sized."""
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    if isinstance(value, str):
        return _clip(value, EXCERPT_CHARS)
    return _clip(repr(value), EXCERPT_CHARS)


def safe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as a :class:`FieldError` dict that cannot echo more than a few dozen characters.

    Keys of the input appear in ``loc`` (an unknown key is an error), so each part is clipped too; the
    excerpt is left out wherever the path names something secret-looking (``password``, ``token``, …).
    """
    loc: list[str | int] = [p if isinstance(p, int) else _clip(str(p), LOC_PART_CHARS) for p in error["loc"]]
    out: dict[str, Any] = {
        "loc": loc,
        "msg": _clip(str(error.get("msg", "")), MSG_CHARS),
        "type": error["type"],
    }
    if "input" in error and not _looks_secret(loc) and error["type"] != "missing":
        out["input_excerpt"] = value_excerpt(error["input"])
    return out


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer 422 with :func:`safe_error` entries instead of FastAPI's default, which echoes every input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [safe_error(dict(e)) for e in errors[:MAX_REPORTED_ERRORS]]
    return JSONResponse({"detail": detail, "errors": len(errors)}, status_code=422)


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (scheme case-insensitive)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def configured_token(runtime: Runtime) -> str:
    """The ingest API token from the config ('' when ingest is disabled)."""
    return runtime.config.api.token.get_secret_value() if runtime.config.api.token else ""


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATHS = ("/api/articles",)
METRICS_PATH = "/metrics"
STATUS_PATHS = frozenset({"/", "/api/status"})
# A browser shows its sign-in prompt for Basic; API clients send the bearer token.
STATUS_CHALLENGE = [
    (b"www-authenticate", b'Basic realm="Syndicate status", charset="UTF-8"'),
    (b"www-authenticate", b'Bearer realm="Syndicate status"'),
]


def basic_password_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization: Basic`` header's password is ``token`` (the user name is not checked)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    _, colon, password = decoded.partition(":")
    return bool(colon) and hmac.compare_digest(password.encode(), token.encode())


def needs_token(method: str, path: str) -> bool:
    """Any method but GET/HEAD/OPTIONS (anything that can change state), and all of ``/api/articles``."""
    return method not in SAFE_METHODS or path == TOKEN_PATHS[0] or path.startswith(TOKEN_PATHS[0] + "/")


class AuthGate:
    """Refuse requests without the bearer token before any of their body is read.

    FastAPI reads and parses a body before it solves a route's dependencies, so a stranger's
    invalid JSON got a 422 describing it, and a stranger's 10 MB body was read whole, before the
    token was looked at. Here the headers alone decide: a refused request's ``receive`` is never
    called (so uvicorn never sends ``100 Continue``), and a request that announced a body gets
    ``Connection: close`` so the rest of it is not waited for.
    """

    def __init__(self, app: ASGIApp, web_app: FastAPI) -> None:
        self.app = app
        self.web_app = web_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == METRICS_PATH:
            await self._metrics(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] in STATUS_PATHS and scope["method"] in HEAD_GET:
            await self._status(scope, receive, send)
            return
        if scope["type"] != "http" or not needs_token(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        token = configured_token(self.web_app.state.runtime or get_runtime())
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if token and bearer_token_matches(authorization, token):
            await self.app(scope, receive, send)
            return
        if token:
            status, detail, extra = 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
        else:
            status, detail, extra = 503, "ingest is disabled: set api.token in the config", []
        has_body = (
            headers.get(b"content-length", b"0").strip() not in (b"", b"0") or b"transfer-encoding" in headers
        )
        response = JSONResponse({"detail": detail}, status_code=status)
        response.raw_headers.extend(extra)
        if has_body:
            response.raw_headers.append((b"connection", b"close"))
        await response(scope, receive, send)

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Sources, partners' endpoints and errors are not for everyone: behind the token unless
        # api.public_status says otherwise (the demo config does).
        runtime = self.web_app.state.runtime or get_runtime()
        if runtime.config.api.public_status:
            await self.app(scope, receive, send)
            return
        token = configured_token(runtime)
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if token and (
            bearer_token_matches(authorization, token) or basic_password_matches(authorization, token)
        ):
            await self.app(scope, receive, send)
            return
        if token:
            detail = (
                "the status needs the api.token: send 'Authorization: Bearer <token>', or sign in from a "
                "browser with the token as the password (any user name)"
            )
            response = JSONResponse({"detail": detail}, status_code=401)
            response.raw_headers.extend(STATUS_CHALLENGE)
        else:
            detail = "the status is behind api.token, which is not set: set it, or api.public_status: true"
            response = JSONResponse({"detail": detail}, status_code=503)
        await response(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Its own token: a Prometheus server gets a secret that can read counts, not push articles.
        runtime = self.web_app.state.runtime or get_runtime()
        token = runtime.config.api.metrics_token
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if token is None or bearer_token_matches(authorization, token.get_secret_value()):
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        response.raw_headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
        await response(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 to request bodies over ``limit`` bytes instead of reading (and parsing) them whole.

    A declared Content-Length over the limit is refused before anything is read; a body sent without
    one (chunked) is counted as it arrives and refused as soon as it passes the limit. Either way
    the 413 says ``Connection: close``, so the server hangs up instead of reading (and discarding)
    the rest of the body to keep the connection alive: a 100 MB chunked body was read to its end.
    The app behind is told the client went away, and whatever it answers to that is dropped.

    Before hanging up, the server lingers (as nginx's ``lingering_close`` does): the 413 is sent at
    once, then what the client is still sending is read and dropped within a budget
    (:data:`LINGER_SECONDS`; a declared length up to twice the limit, else :data:`LINGER_BYTES`).
    Closing a socket with unread data makes the kernel answer with a reset, and a client still
    sending then loses the 413 it was sent (a burst's 11.5 MB pushes got ``Connection reset by
    peer`` instead of their 413).
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
            size = int(declared)
            await self._refuse(receive, send, size if size <= 2 * self.limit else 0)
            return
        seen = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(receive, send, LINGER_BYTES)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        await self.app(scope, counted, unless_refused)

    def _detail(self) -> str:
        return f"request body too large: the limit is {self.limit} bytes"

    async def _refuse(self, receive: Receive, send: Send, linger: int) -> None:
        """Send the 413 now, read and drop up to ``linger`` more bytes (within LINGER_SECONDS), hang up."""
        body = json.dumps({"detail": self._detail()}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < linger and (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                break
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})


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


def _request_validators(scope: Scope) -> tuple[bytes, str | None, str | None, bytes]:
    """``Accept-Encoding``, ``If-None-Match``, ``If-Modified-Since`` and ``Accept`` of a feed request."""
    encoding, inm, ims, accept = b"", None, None, b""
    for key, value in scope["headers"]:
        if key == b"accept-encoding":
            encoding = value
        elif key == b"if-none-match":
            inm = value.decode("latin-1")
        elif key == b"if-modified-since":
            ims = value.decode("latin-1")
        elif key == b"accept":
            accept = value
    return encoding, inm, ims, accept


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
                encoding, inm, ims, accept = _request_validators(scope)
                status, headers, body = entry.answer(encoding, inm, ims, scope["method"] == "HEAD", accept)
                metrics.count_feed_request(entry.name, status, feed_cache(self.web_app).client)
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


bearer_scheme = HTTPBearer(auto_error=False, description="The config's `api.token`.")


def require_token(
    r: RT, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """Check the bearer token again at the route (:class:`AuthGate` has refused strangers before the body)."""
    token = configured_token(r)
    if not token:
        raise HTTPException(503, "ingest is disabled: set api.token in the config")
    given = f"Bearer {credentials.credentials}" if credentials else None
    if not bearer_token_matches(given, token):
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


def store_pushed(r: Runtime, payload: IngestRequest) -> tuple[int, bool]:
    """Store a validated push; ``(id, created)``.

    Two pushes of one new URL at the same moment both find no row and both insert; the loser's
    unique-URL violation means the row now exists, so it is pushed once more as an update.
    """
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
    try:
        return ingest_article(r, item)
    except IntegrityError:
        return ingest_article(r, item)


def _redis_of(request: Request) -> Any:
    return current_runtime(request).redis_client


async def storage_full_handler(request: Request, exc: Exception) -> JSONResponse:
    """A full disk (:func:`worker.storage.is_storage_full`) is 503 + ``Retry-After``; anything else 500.

    The transaction was rolled back, so nothing of the request was stored: the client sends it again.
    """
    if not storage.is_storage_full(exc):
        raise exc  # on to the server error middleware: a 500 with its traceback in the log
    where = "ingest" if request.url.path == TOKEN_PATHS[0] else "api"
    await run_in_threadpool(storage.note_refused, _redis_of(request), where, exc)
    detail = (
        f"storage is full, nothing was stored: {storage.describe(exc)}; "
        f"send it again in {storage.RETRY_AFTER_SECONDS} s (an operator must free space on the server)"
    )
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(storage.RETRY_AFTER_SECONDS)}
    )


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
        from worker import redisclient

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
        from worker.ops.metrics_collector import render_metrics

        body, content_type = render_metrics(r)
        return Response(content=body, media_type=content_type)

    # One route per method: a two-method api_route gives both operations the same OpenAPI id.
    @app.get("/feeds/{name}.{fmt}")
    @app.head("/feeds/{name}.{fmt}", operation_id="feed_head")
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
        encoding, inm, ims, accept = _request_validators(request.scope)
        status, headers, body = entry.answer(encoding, inm, ims, request.method == "HEAD", accept)
        metrics.count_feed_request(entry.name, status, feed_cache(request.app).client)
        response = Response(content=body, status_code=status)
        response.raw_headers = list(headers)
        return response

    @app.post(
        "/api/articles",
        status_code=202,
        dependencies=[Depends(require_token)],
        response_model=IngestAccepted,
        responses=ERROR_RESPONSES,
    )
    def ingest(payload: IngestRequest, r: RT) -> dict[str, Any]:
        """Accept a pushed article; it flows through the same pipeline as crawled ones."""
        if payload.source and payload.source not in {s.name for s in r.config.sources}:
            raise HTTPException(422, f"source: no source named {_clip(payload.source, EXCERPT_CHARS)!r}")
        if payload.html is None and payload.title is None:  # only then is the URL itself fetched
            refuse_unfetchable(r, "url", str(payload.url))
        if payload.image:
            refuse_unfetchable(r, "image", str(payload.image))
        article_id, created = store_pushed(r, payload)
        storage.note_ok(r.redis_client, "ingest")
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
        from worker.outbox.operator import preview_article

        try:
            return preview_article(r, ref, endpoint)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

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
    add_status_routes(app)
    add_story_routes(app)
    add_docs_routes(app)
    return app


def feed_links(config: Any, base_url: str) -> list[Any]:
    """Every configured feed as a :class:`feeds.opml.FeedLink` (title and URL without ``.fmt``)."""
    from feeds.opml import FeedLink

    return [
        FeedLink(
            title=f.title,
            url_base=f"{base_url}/feeds/{f.name}",
            home_url=config.site_link(f, base_url),
            description=f.description,
        )
        for f in config.feeds
    ]


def autodiscovery_links(config: Any, base_url: str) -> str:
    """The ``<link rel="alternate">`` tags (every feed, every format, plus the OPML list) for a page head."""
    from feeds.opml import discovery_links
    from worker.render import OPML_PATH

    return discovery_links(feed_links(config, base_url), base_url + OPML_PATH)


def add_discovery_routes(app: FastAPI) -> None:
    """``/feeds.opml``, the feeds' XSL stylesheet and the RFC 5005 archive pages."""
    from feeds import stylesheet
    from feeds.http import cache_headers, is_not_modified
    from feeds.opml import CONTENT_TYPE as OPML_TYPE
    from feeds.opml import render_opml
    from worker.render import OPML_PATH, STYLESHEET_PATH, render_archive

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

    @app.get("/feeds/{name}/archive/{page}.{fmt}")
    @app.head("/feeds/{name}/archive/{page}.{fmt}", operation_id="feed_archive_head")
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


def add_status_routes(app: FastAPI) -> None:
    """The status page ``/``, ``GET /api/status`` and the retry buttons' ``POST`` endpoints.

    The snapshot reads Redis for feed request counts and worker/beat liveness; without Redis those
    parts say "unknown" and the rest still shows.
    """
    from worker.ops.status import StatusSnapshot, retry_article
    from worker.statuspage import render_status_page

    def current_snapshot(r: Runtime) -> dict[str, Any]:
        from worker import redisclient

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

    @app.post(
        "/api/shares/{share_id}/retry",
        dependencies=[Depends(require_token)],
        response_model=RetryQueued,
        responses=RETRY_RESPONSES,
    )
    def retry_share_route(share_id: int, r: RT) -> dict[str, Any]:
        """Put a failed or uncertain share back in the outbox and enqueue its delivery."""
        from worker.outbox.operator import retry_share
        from worker.store.models import Share
        from worker.tasks import deliver_share

        with r.session() as session:
            if session.get(Share, share_id) is None:
                raise HTTPException(404, f"no share with id {share_id}")
        if not retry_share(r, share_id):
            raise HTTPException(409, f"share {share_id} is not failed or uncertain")
        return _enqueue_retry(deliver_share, share_id)

    @app.post(
        "/api/articles/{article_id}/retry",
        dependencies=[Depends(require_token)],
        response_model=RetryQueued,
        responses=RETRY_RESPONSES,
    )
    def retry_article_route(article_id: int, r: RT) -> dict[str, Any]:
        """Put a failed article back to pending and enqueue its processing (fetch, normalize, feeds)."""
        from worker.store.models import Article
        from worker.tasks import process_article

        with r.session() as session:
            if session.get(Article, article_id) is None:
                raise HTTPException(404, f"no article with id {article_id}")
            retried = retry_article(session, article_id)
        if not retried:
            raise HTTPException(409, f"article {article_id} is not failed")
        return _enqueue_retry(process_article, article_id)


class MergeRequest(BaseModel):
    """The body of ``POST /api/stories/{id}/merge``: the story whose versions join this one."""

    model_config = ConfigDict(extra="forbid")

    other: int


STORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorMessage, "description": "No such story or article"},
    409: {"model": ErrorMessage, "description": "The change cannot be done (see the detail)"},
    503: {"model": ErrorMessage, "description": "No api.token in the config"},
}


def add_story_routes(app: FastAPI) -> None:
    """``/api/stories``: list and show stories; merge two, split an article out (the CLI's story commands)."""

    def changed(r: Runtime, done: edit.Changed) -> dict[str, Any]:
        # Imported here as the other enqueueing routes do: worker.tasks builds the Celery app.
        from worker.tasks import schedule_renders

        renders = "queued"
        try:
            schedule_renders(done.feeds)
        except Exception as exc:  # committed: the feeds show it at their next render
            log.warning("could not schedule the renders of %s: %s", done.feeds, exc)
            renders = "queue unavailable"
        with r.session() as session:
            story = story_detail(session, done.story_id)
        return {"story": story, "feeds": done.feeds, "renders": renders}

    @app.get("/api/stories", dependencies=[Depends(require_token)])
    def stories(r: RT, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        """The newest stories, each ``{"id", "title", "articles": [{"id", "url", "source", "language"}]}``,
        the main version first."""
        with r.session() as session:
            return recent_stories(session, limit=limit)

    @app.get("/api/stories/{story_id}", dependencies=[Depends(require_token)], responses=STORY_RESPONSES)
    def story(story_id: int, r: RT) -> dict[str, Any]:
        """One story and its versions (role, source, language, title, URL, published)."""
        with r.session() as session:
            found = story_detail(session, story_id)
        if found is None:
            raise HTTPException(404, f"no story with id {story_id}")
        return found

    @app.post(
        "/api/stories/{story_id}/merge", dependencies=[Depends(require_token)], responses=STORY_RESPONSES
    )
    def merge_stories(story_id: int, body: MergeRequest, r: RT) -> dict[str, Any]:
        """Merge story ``other`` into this one (this one keeps its feed entry); the feeds re-render."""
        try:
            done = edit.merge(r, story_id, body.other)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except StoryChangeError as exc:
            raise HTTPException(409, str(exc)) from None
        return changed(r, done)

    @app.post(
        "/api/articles/{article_id}/split", dependencies=[Depends(require_token)], responses=STORY_RESPONSES
    )
    def split_article(article_id: int, r: RT) -> dict[str, Any]:
        """Take an article out of its story into a new one; it never rejoins that story."""
        try:
            done = edit.split(r, article_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except StoryChangeError as exc:
            raise HTTPException(409, str(exc)) from None
        return changed(r, done)


class RetryQueued(BaseModel):
    """The answer of a retry: the row is pending again; ``queued`` unless the broker was unreachable."""

    id: int
    status: Literal["queued", "pending, queue unavailable"]


RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorMessage, "description": "No such row"},
    409: {"model": ErrorMessage, "description": "Nothing to retry: the row has not failed"},
    503: {"model": ErrorMessage, "description": "No api.token in the config"},
}


def _enqueue_retry(task: Any, row_id: int) -> dict[str, Any]:
    try:
        task.delay(row_id)
    except Exception as exc:  # the row is pending: the sweeper re-enqueues it
        log.warning("could not enqueue retry of %s: %s", row_id, exc)
        return {"id": row_id, "status": "pending, queue unavailable"}
    return {"id": row_id, "status": "queued"}


DOCS_STATIC = "/api/docs/static"


def add_docs_routes(app: FastAPI) -> None:
    """``/api/docs``: Swagger UI from the ``swagger-ui-bundle-v2`` package, so it works offline.

    FastAPI's own page loads Swagger UI from a CDN; here every asset is served from ``DOCS_STATIC``.
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

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
