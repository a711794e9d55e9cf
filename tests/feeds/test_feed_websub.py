"""WebSub pings: feeds.websub (the pure protocol) and worker.websub.publish against a real local hub."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests

from feeds import websub
from feeds.http import parse_retry_after
from feeds.websub import WebSubError
from worker.http import HttpClient
from worker.websub import publish


@dataclass
class Hub:
    """What the fake hub answers and what it received."""

    url: str
    status: int = 202
    body: bytes = b"Request received: publish\n"
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode("ascii")
            hub.requests.append((self.path, self.headers.get("Content-Type", ""), parse_qsl(raw)))
            hub.user_agents.append(self.headers.get("User-Agent", ""))
            self.send_response(hub.status)
            for name, value in hub.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(hub.body)))
            self.end_headers()
            self.wfile.write(hub.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def hub() -> Iterator[Hub]:
    state = Hub(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hub"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


TOPICS = ["http://127.0.0.1:8000/feeds/all.rss", "http://127.0.0.1:8000/feeds/all.atom"]


def test_publish_posts_topic_and_url_for_each_topic(hub: Hub) -> None:
    publish(hub.url, TOPICS)
    assert len(hub.requests) == 2
    for (path, content_type, form), topic in zip(hub.requests, TOPICS, strict=True):
        assert path == "/hub"
        assert content_type == "application/x-www-form-urlencoded"
        assert ("hub.mode", "publish") in form
        assert ("hub.topic", topic) in form
        assert ("hub.url", topic) in form
        assert len(form) == 3


class _RecordingSession(requests.Session):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_publish_uses_given_client_and_skips_duplicates(hub: Hub) -> None:
    session = _RecordingSession()
    client = HttpClient(user_agent="Syndicate-test", session=session)
    publish(hub.url, [TOPICS[0], TOPICS[0], ""], client=client)
    assert not session.closed  # the caller's pooled client stays open for its next requests
    session.close()
    assert len(hub.requests) == 1
    assert hub.user_agents == ["Syndicate-test"]


def test_publish_nothing_sends_nothing(hub: Hub) -> None:
    publish(hub.url, [])
    assert hub.requests == []


def test_bad_request_is_not_retryable(hub: Hub) -> None:
    hub.status = 400
    hub.body = b"Missing form argument: hub.topic\n"
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS)
    err = caught.value
    assert err.status == 400
    assert "Missing form argument" in err.body
    assert err.retryable is False
    assert err.retry_after is None
    assert err.topic_url == TOPICS[0]
    assert err.hub_url == hub.url
    # Stops at the first failure.
    assert len(hub.requests) == 1


def test_service_unavailable_is_retryable_with_retry_after(hub: Hub) -> None:
    hub.status = 503
    hub.body = b"busy"
    hub.headers = {"Retry-After": "120"}
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS[:1])
    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert caught.value.retry_after == 120.0
    assert caught.value.body == "busy"


def test_too_many_requests_is_retryable(hub: Hub) -> None:
    hub.status = 429
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS[:1])
    assert caught.value.retryable is True
    assert caught.value.retry_after is None


def test_rate_limit_headers_are_read_by_the_shared_layer(hub: Hub) -> None:
    hub.status = 429
    hub.headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "7.5"}
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS[:1])
    assert caught.value.retry_after == 7.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_client_errors_are_not_retryable_and_keep_no_retry_after(hub: Hub, status: int) -> None:
    hub.status = status
    hub.headers = {"Retry-After": "30"}
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS[:1])
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (status, False, None)


def test_redirect_is_an_error(hub: Hub) -> None:
    hub.status = 302
    hub.headers = {"Location": "/elsewhere"}
    with pytest.raises(WebSubError) as caught:
        publish(hub.url, TOPICS[:1])
    assert caught.value.status == 302
    assert caught.value.retryable is False
    assert len(hub.requests) == 1


def test_unreachable_hub_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WebSubError) as caught:
        publish(f"http://127.0.0.1:{port}/hub", TOPICS[:1], timeout=2)
    assert caught.value.status is None
    assert caught.value.retryable is True


def test_invalid_hub_url_is_not_retryable() -> None:
    with pytest.raises(WebSubError) as caught:
        publish("not a url", TOPICS[:1])
    assert caught.value.retryable is False
    assert caught.value.status is None


# --- the pure half: feeds.websub ------------------------------------------------------------------


def test_publish_form_names_the_topic_both_ways() -> None:
    assert websub.publish_form("https://news.example/all.rss") == [
        ("hub.mode", "publish"),
        ("hub.topic", "https://news.example/all.rss"),
        ("hub.url", "https://news.example/all.rss"),
    ]


def test_publish_topics_keeps_order_and_drops_duplicates_and_blanks() -> None:
    assert websub.publish_topics(["b", "", "a", "b"]) == ["b", "a"]


def test_pure_publish_stops_at_the_first_failure() -> None:
    pinged: list[str] = []

    def ping(topic: str) -> None:
        pinged.append(topic)
        if topic == "b":
            raise WebSubError("refused", hub_url="hub", topic_url=topic)

    with pytest.raises(WebSubError):
        websub.publish(["a", "b", "c"], ping)
    assert pinged == ["a", "b"]


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_answer_is_accepted(status: int) -> None:
    assert websub.answer_error("hub", "topic", status, b"", retryable=False) is None


def test_answer_error_truncates_the_body_and_drops_retry_after_when_final() -> None:
    error = websub.answer_error("hub", "topic", 400, b"x" * 5000, retryable=False, retry_after=9.0)
    assert error is not None
    assert len(error.body) == websub.MAX_ERROR_BODY
    assert error.retry_after is None


def test_feeds_loads_no_http_library() -> None:
    code = (
        "import sys, feeds, feeds.websub\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'requests', 'urllib3'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 02 May 2024 08:01:30 GMT", 90.0),
        ("Thu, 02 May 2024 07:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected
