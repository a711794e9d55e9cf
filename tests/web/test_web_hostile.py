"""Hostile requests to the ingest API: strangers refused before their body is read, small 422 answers.

The refusal is checked twice: on a real uvicorn server (httptools, as ``syndicate web`` runs it) with a
raw socket that sends only headers, then a body that never ends; and on the ASGI app itself, where a
refused request's ``receive`` must never be called. Each refusal test has a control with the right
token showing that the same probe does see a body being read.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.support.services import free_port
from worker.runtime import Runtime
from worker.store.models import Article
from worker.web.app import create_web_app, server_options

TOKEN = "web-test-token"  # tests/web/conftest.py
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALID_URL = "https://partner.example/news/story.html"
MB = 1_000_000


def _articles(runtime: Runtime) -> int:
    with runtime.session() as session:
        return int(session.scalar(select(func.count()).select_from(Article)) or 0)


@pytest.fixture
def live(runtime: Runtime, broker: Any) -> Iterator[int]:
    """The real app on a real uvicorn server (production options) in a thread; yields its port."""
    port = free_port()
    options = {**server_options("warning"), "backlog": 128}
    server = uvicorn.Server(uvicorn.Config(create_web_app(runtime), host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def _head(port: int, extra: str) -> str:
    start = f"POST /api/articles HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    return f"{start}Content-Type: application/json\r\n{extra}\r\n"


def _read_status_and_headers(sock: socket.socket) -> tuple[str, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return head.split("\r\n", 1)[0], head.lower()


def _closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, TimeoutError):
        return False
    return True


def test_stranger_announcing_10_gb_gets_401_without_100_continue(live: int, runtime: Runtime) -> None:
    """``Expect: 100-continue``: uvicorn sends ``100 Continue`` only when the app asks for the body."""
    with _connect(live) as sock:
        sock.sendall(_head(live, "Content-Length: 10000000000\r\nExpect: 100-continue\r\n").encode())
        status, headers = _read_status_and_headers(sock)
        assert status == "HTTP/1.1 401 Unauthorized", status
        assert "www-authenticate: bearer" in headers and "connection: close" in headers
        assert _closed_by_server(sock)
    assert _articles(runtime) == 0


def test_control_the_right_token_does_get_100_continue(live: int) -> None:
    """The probe above can fail: with the token the app reads the body, so uvicorn invites it."""
    with _connect(live) as sock:
        sock.sendall(_head(live, f"Authorization: Bearer {TOKEN}\r\nContent-Length: 9\r\n").encode()[:-2])
        sock.sendall(b"Expect: 100-continue\r\n\r\n")
        status, _ = _read_status_and_headers(sock)
        assert status == "HTTP/1.1 100 Continue", status


def test_stranger_with_a_never_ending_chunked_body_gets_401_while_still_sending(live: int) -> None:
    sent = 0
    stop = threading.Event()
    send_error: list[BaseException] = []

    with _connect(live) as sock:
        sock.sendall(_head(live, "Authorization: Bearer wrong\r\nTransfer-Encoding: chunked\r\n").encode())
        chunk = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"

        def pour() -> None:
            nonlocal sent
            try:
                while not stop.is_set():
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError as exc:
                send_error.append(exc)

        sender = threading.Thread(target=pour, daemon=True)
        sender.start()
        try:
            status, headers = _read_status_and_headers(sock)
            assert status == "HTTP/1.1 401 Unauthorized", status
            assert "connection: close" in headers
            # The server hangs up on the endless body; the sender then fails instead of pouring forever.
            sender.join(10)
            assert not sender.is_alive(), f"the server kept reading: {sent} bytes sent"
            assert send_error, "the sender stopped without an error"
        finally:
            stop.set()


def test_a_never_ending_chunked_body_with_the_token_gets_413_and_the_server_hangs_up(live: int) -> None:
    """With the token the body is read, counted, refused at the limit and the rest is not read.

    The 413 went out at the limit before, but the connection was kept alive, so uvicorn read (and
    threw away) whatever followed: 100 MB were read to their end, and an endless body forever.
    """
    from worker.web.middleware import MAX_BODY_BYTES

    sent = 0
    stop = threading.Event()
    send_error: list[BaseException] = []
    with _connect(live) as sock:
        sock.sendall(_head(live, f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n").encode())
        chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"

        def pour() -> None:
            nonlocal sent
            try:
                while not stop.is_set():
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError as exc:
                send_error.append(exc)

        sender = threading.Thread(target=pour, daemon=True)
        sender.start()
        try:
            status, headers = _read_status_and_headers(sock)
            assert status == "HTTP/1.1 413 Request Entity Too Large", status
            assert "connection: close" in headers
            answered_at = sent
            sender.join(10)
            assert not sender.is_alive(), f"the server kept reading: {sent} bytes sent"
            assert send_error, "the sender stopped without an error"
        finally:
            stop.set()
    # What the client got into the kernel's buffers and the server's before the hang-up: the limit,
    # plus what loopback socket buffers hold (a few MB), far from the 100 MB the server read before.
    assert MAX_BODY_BYTES < sent < MAX_BODY_BYTES + 16 * MB, (answered_at, sent)


def test_stranger_with_invalid_json_learns_nothing_about_the_schema(
    client: TestClient, runtime: Runtime
) -> None:
    """FastAPI parses a body before a route's dependencies run: this was a 422 describing the JSON."""
    for body in (b"{not json", b'{"url": 1, "bogus": [1, 2]}', b"\xff\xfe\x00"):
        resp = client.post("/api/articles", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 401, (body, resp.text)
        assert resp.json() == {"detail": "missing or wrong bearer token"}
    assert _articles(runtime) == 0


def test_every_post_needs_the_token(client: TestClient) -> None:
    assert client.post("/api/no-such-route", content=b"x" * 100).status_code == 401
    assert client.put("/api/articles", content=b"x").status_code == 401
    assert client.get("/api/articles/https://partner.example/x/preview").status_code == 401
    assert client.get("/api/status").status_code == 200  # public here: see test_web_status_access.py


def _asgi_post(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """Drive the ASGI app with one POST; ``(status, times receive was called)``."""
    calls = 0
    body = json.dumps({"url": VALID_URL, "title": "t"}).encode()
    started: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/articles",
        "raw_path": b"/api/articles",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    return int(started["status"]), calls


def test_refused_request_body_is_never_received(runtime: Runtime, broker: Any) -> None:
    app = create_web_app(runtime)
    assert _asgi_post(app, []) == (401, 0)
    assert _asgi_post(app, [(b"authorization", b"Bearer nope")]) == (401, 0)
    status, calls = _asgi_post(app, [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert (status, calls) == (202, 1), "control: an accepted request reads its body"


def test_without_a_configured_token_posts_are_503_unread(
    make_runtime, config_factory, redis_url: str
) -> None:
    runtime = make_runtime(config_factory(api={}), redis_url=redis_url)
    assert _asgi_post(create_web_app(runtime), [(b"authorization", b"Bearer x")]) == (503, 0)


def _post(client: TestClient, payload: Any) -> Any:
    return client.post(
        "/api/articles", content=json.dumps(payload), headers={**AUTH, "Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"url": "not a url " + "x" * MB}, ["body", "url"]),
        ({"url": VALID_URL, "title": "y" * MB}, ["body", "title"]),
        ({"url": VALID_URL, "tags": ["z" * MB]}, ["body", "tags", 0]),
        ({"url": VALID_URL, "authors": "w" * MB}, ["body", "authors"]),
    ],
    ids=["bad-url", "long-title", "long-tag", "string-for-list"],
)
def test_422_for_a_1_mb_value_names_the_field_with_a_short_excerpt(
    client: TestClient, runtime: Runtime, broker: Any, payload: dict[str, Any], loc: list[Any]
) -> None:
    resp = _post(client, payload)
    assert resp.status_code == 422, resp.status_code
    assert len(resp.content) < 1500, len(resp.content)
    body = resp.json()
    assert body["errors"] == 1
    (error,) = body["detail"]
    assert error["loc"] == loc and error["msg"] and error["type"]
    excerpt = error["input_excerpt"]
    assert len(excerpt) < 80 and "chars)" in excerpt, excerpt
    assert _articles(runtime) == 0


def test_422_for_a_1_mb_unknown_key_clips_the_key(client: TestClient, broker: Any) -> None:
    resp = _post(client, {"url": VALID_URL, "k" * MB: 1})
    assert resp.status_code == 422
    assert len(resp.content) < 1000
    (error,) = resp.json()["detail"]
    assert error["type"] == "extra_forbidden"
    assert error["loc"][0] == "body" and error["loc"][1].startswith("kkkk") and len(error["loc"][1]) < 100


def test_422_for_ten_thousand_bad_keys_lists_ten(client: TestClient, broker: Any) -> None:
    resp = _post(client, {"url": VALID_URL, **{f"extra{i}": "v" * 100 for i in range(10_000)}})
    assert resp.status_code == 422
    body = resp.json()
    assert body["errors"] == 10_000 and len(body["detail"]) == 10
    assert len(resp.content) < 3000


@pytest.mark.parametrize("key", ["password", "api_token", "client_secret", "Authorization", "session_cookie"])
def test_422_never_shows_a_secret_looking_value(client: TestClient, broker: Any, key: str) -> None:
    resp = _post(client, {"url": VALID_URL, key: "hunter2-do-not-echo"})
    assert resp.status_code == 422
    assert "hunter2" not in resp.text
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", key] and "input_excerpt" not in error


def test_containers_are_described_not_echoed(client: TestClient, broker: Any) -> None:
    resp = _post(client, {"url": VALID_URL, "title": {"nested": ["secret-ish"] * 1000}})
    assert resp.status_code == 422
    (error,) = resp.json()["detail"]
    assert error["input_excerpt"] == "an object with 1 keys" and "secret-ish" not in resp.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"url": "https://partner.example/a", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"url": "https://partner.example/a", "title": ' + b"[" * 500 + b"]" * 500 + b"}",
        b'{"url": "https://partner.example/\xff\xfe", "title": "caf\xe9"}',
        b"\x00" * 1000,
        b'{"url": "https://partner.example/a", "title": "a\\ud800b"}',
        b'{"url": "https://partner.example/a", "title": "t", "tags": ["\\udfff"]}',
        b'{"url": "https://partner.example/\\ud800", "title": "t"}',
        b'{"url": "https://partner.example/a", "title": "a\\u0000b"}',
        b'{"url": "https://partner.example/a", "html": "<p>a\\u0000b</p>"}',
    ],
    ids=[
        "nested-100k",
        "nested-500",
        "latin-1",
        "nul-bytes",
        "lone-surrogate",
        "surrogate-tag",
        "surrogate-url",
        "nul-title",
        "nul-html",
    ],
)
def test_malformed_bodies_are_4xx_and_small(
    client: TestClient, runtime: Runtime, broker: Any, body: bytes
) -> None:
    resp = client.post("/api/articles", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert len(resp.content) < 1500
    assert _articles(runtime) == 0


@pytest.mark.parametrize(
    "published", [-203, 1700000000, 1.5, True, ["2019-03-06T10:00:00Z"], "0", "1700000000", "2019-03-06"]
)
def test_published_must_be_a_date_string_not_unix_time(
    client: TestClient, runtime: Runtime, broker: Any, published: Any
) -> None:
    """pydantic alone read a number as Unix time, which the schema does not allow (found by the fuzz)."""
    resp = _post(client, {"url": VALID_URL, "title": "t", "published": published})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "published"]
    assert _articles(runtime) == 0
