"""A real HTTP server for tests: static fixture sites plus programmable routes.

``HTTPTestServer`` runs a :class:`~http.server.ThreadingHTTPServer` on ``127.0.0.1:<free port>`` in a
background thread. It serves files under ``root`` (``tests/fixtures/sites`` by default) with ETag /
Last-Modified validators and 304 answers, and routes registered by tests, which win over files::

    with HTTPTestServer() as server:
        server.redirect("/old", "/news/")
        server.status("/busy", 503, headers={"Retry-After": "120"})
        server.slow("/slow", delay=2.0)
        server.huge("/big", size=10_000_000, content_length=False)
        server.gzip("/bomb", b"0" * 10_000_000)
        server.route("/custom", lambda request: Response(200, b"hi", {"Content-Type": "text/plain"}))
        requests.get(server.url("/news/"))

In text fixtures (and inside ``.gz`` fixtures) the token ``{{BASE_URL}}`` is replaced by the server's
base URL (``http://127.0.0.1:PORT``, no trailing slash), so sitemaps and feeds can hold absolute links.
Every request is recorded in :attr:`HTTPTestServer.requests`.
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

SITES = Path(__file__).resolve().parents[1] / "fixtures" / "sites"
BASE_URL_TOKEN = b"{{BASE_URL}}"
CHUNK = 64 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
    ".txt": "text/plain; charset=utf-8",
    ".gz": "application/x-gzip",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".pdf": "application/pdf",
}
TEXT_SUFFIXES = frozenset({".html", ".htm", ".xml", ".rss", ".atom", ".json", ".txt"})
# Fixed so that Last-Modified does not depend on when the fixtures were checked out.
FIXTURE_LAST_MODIFIED = formatdate(1714730400, usegmt=True)  # 2024-05-03 10:00:00 GMT


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Response:
    """What a route answers.

    ``body`` is bytes or an iterable of byte chunks (streamed, without Content-Length). ``delay``
    waits before the status line is sent; ``chunk_delay`` between chunks of the body. ``chunked``
    answers in HTTP/1.1 with ``Transfer-Encoding: chunked``, one HTTP chunk per body chunk.
    """

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    content_length: bool = True
    chunked: bool = False


Handler = Callable[[Request], Response]


class HTTPTestServer:
    """A threaded HTTP server on 127.0.0.1 serving fixture files and programmable routes."""

    def __init__(self, root: Path | None = SITES, host: str = "127.0.0.1") -> None:
        """Serve files under ``root`` (None: routes only) on ``host`` and a free port."""
        self.root = root.resolve() if root is not None else None
        self.host = host
        self.requests: list[Request] = []
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> HTTPTestServer:
        """Bind and start serving in a daemon thread."""
        handler = type("BoundHandler", (_RequestHandler,), {"owner": self})
        httpd = ThreadingHTTPServer((self.host, 0), handler)
        httpd.daemon_threads = True
        httpd.handle_error = _ignore_client_errors  # type: ignore[method-assign]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes handlers still sleeping in a delay."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> HTTPTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``, as an allow-list entry."""
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host_port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # --- routes ----------------------------------------------------------------------------------

    def route(self, path: str, answer: Response | Handler) -> None:
        """Answer requests for ``path`` (query included if given, else any query) with ``answer``."""
        handler = _constant(answer) if isinstance(answer, Response) else answer
        with self._lock:
            self._routes[path] = handler

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Redirect ``path`` to ``location`` (relative or absolute)."""
        self.route(path, Response(status, headers={"Location": location}))

    def status(
        self, path: str, status: int, *, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer ``path`` with a bare ``status`` (and headers such as Retry-After)."""
        self.route(path, Response(status, body, {"Content-Type": "text/plain", **(headers or {})}))

    def content(
        self,
        path: str,
        body: bytes | Iterable[bytes],
        content_type: str = "text/html; charset=utf-8",
        *,
        headers: Mapping[str, str] | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        """Answer ``path`` with ``body`` of ``content_type``; chunks of an iterable body are streamed."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        self.route(path, Response(200, body, all_headers, chunk_delay=chunk_delay))

    def slow(self, path: str, delay: float, body: bytes = b"<html><body>late</body></html>") -> None:
        """Answer ``path`` only after ``delay`` seconds."""
        self.route(path, Response(200, body, {"Content-Type": "text/html"}, delay=delay))

    def huge(
        self, path: str, size: int, *, content_length: bool = True, content_type: str = "text/html"
    ) -> None:
        """Answer ``path`` with ``size`` bytes, streamed, with or without a Content-Length."""

        def answer(_request: Request) -> Response:
            headers = {"Content-Type": content_type}
            if content_length:
                headers["Content-Length"] = str(size)
            return Response(200, _repeat(b"a", size), headers, content_length=False)

        self.route(path, answer)

    def gzip(self, path: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        """Answer ``path`` with ``body`` sent gzip-compressed (``Content-Encoding: gzip``)."""
        compressed = gzip_module.compress(body, mtime=0)
        headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
        self.route(path, Response(200, compressed, headers))

    def requests_to(self, path: str) -> list[Request]:
        """The recorded requests for ``path`` (without query)."""
        return [r for r in self.requests if urlsplit(r.path).path == path]

    # --- serving ---------------------------------------------------------------------------------

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            handler = self._routes.get(request.path) or self._routes.get(urlsplit(request.path).path)
        if handler is not None:
            return handler(request)
        return self._static(request)

    def _static(self, request: Request) -> Response:
        if self.root is None:
            return _not_found()
        relative = unquote(urlsplit(request.path).path).lstrip("/")
        target = (self.root / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self.root) or not target.is_file():
            return _not_found()
        body = self._render_file(target)
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        headers = {
            "Content-Type": CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream"),
            "ETag": etag,
            "Last-Modified": FIXTURE_LAST_MODIFIED,
        }
        if_none_match = request.header("If-None-Match")
        if (if_none_match and etag in [v.strip() for v in if_none_match.split(",")]) or (
            not if_none_match and request.header("If-Modified-Since") == FIXTURE_LAST_MODIFIED
        ):
            return Response(304, b"", {"ETag": etag, "Last-Modified": FIXTURE_LAST_MODIFIED})
        return Response(200, body, headers)

    def _render_file(self, path: Path) -> bytes:
        data = path.read_bytes()
        base = self.base_url.encode()
        if path.suffix.lower() in TEXT_SUFFIXES:
            return data.replace(BASE_URL_TOKEN, base)
        if path.suffix.lower() == ".gz":
            return gzip_module.compress(gzip_module.decompress(data).replace(BASE_URL_TOKEN, base), mtime=0)
        return data

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; False if it did."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()


def _constant(response: Response) -> Handler:
    return lambda _request: response


def _repeat(byte: bytes, size: int) -> Iterator[bytes]:
    block = byte * CHUNK
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        sent += len(piece)
        yield piece


def _not_found() -> Response:
    return Response(404, b"not found", {"Content-Type": "text/plain"})


def _ignore_client_errors(request: object, client_address: object) -> None:
    """Clients that hang up early (timeouts, size limits) are expected in these tests."""


class _RequestHandler(BaseHTTPRequestHandler):
    owner: HTTPTestServer
    protocol_version = "HTTP/1.0"  # one response per connection: a body may end at close

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self, send_body: bool = True) -> None:
        request = Request(self.command, self.path, dict(self.headers.items()))
        response = self.owner._answer(request)
        if not self.owner._sleep(response.delay):
            return
        try:
            if response.chunked:
                self.protocol_version = "HTTP/1.1"
            self.send_response(response.status)
            headers = dict(response.headers)
            if response.chunked:
                headers["Transfer-Encoding"] = "chunked"
            elif isinstance(response.body, bytes | bytearray) and response.content_length:
                headers.setdefault("Content-Length", str(len(response.body)))
            headers.setdefault("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not send_body:
                return
            chunks = [response.body] if isinstance(response.body, bytes | bytearray) else response.body
            for index, chunk in enumerate(chunks):
                if index and response.chunk_delay and not self.owner._sleep(response.chunk_delay):
                    return
                if response.chunked:
                    if not chunk:
                        continue
                    chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                self.wfile.write(chunk)
                self.wfile.flush()
            if response.chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
