"""The ASGI layers in front of FastAPI's routing: the feed fast path, the token gate, the body limit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import metrics
from worker.feedcache import CachedFeed, FeedCache
from worker.runtime import get_runtime
from worker.web.auth import (
    METRICS_PATH,
    STATUS_CHALLENGE,
    STATUS_PATHS,
    basic_password_matches,
    bearer_token_matches,
    configured_token,
    needs_token,
)
from worker.web.models import MAX_INGEST_BYTES

# A request body may hold both HTML fields at their limit plus the small ones; nothing more is read.
MAX_BODY_BYTES = 2 * MAX_INGEST_BYTES + 1_000_000
# After a 413, what the client is still sending is read and dropped for this long at most, and (for a
# body without a declared length) up to this many bytes, so that the client can read the 413 before
# the hang-up (see BodyLimitMiddleware).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4_000_000
FEED_FORMATS = {"rss", "atom", "json"}
HEAD_GET = frozenset({"GET", "HEAD"})


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


def request_validators(scope: Scope) -> tuple[bytes, str | None, str | None, bytes]:
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
                encoding, inm, ims, accept = request_validators(scope)
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
