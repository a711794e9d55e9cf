"""worker.http: the rate-limit parser, the status classes and HttpClient against real local servers."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.support.httpserver import HTTPTestServer, Response
from worker.errors import TransportError
from worker.http import Answer, HttpClient, Outcome, classify, retry_delay

NOW = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
EPOCH_NOW = NOW.timestamp()

# --- retry_delay: every rate-limit signal ---------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert retry_delay({"Retry-After": "120"}, now=NOW) == 120.0


def test_retry_after_http_date() -> None:
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert retry_delay({"retry-after": when}, now=NOW) == 90.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert retry_delay({"Retry-After": "Thu, 02 May 2024 07:00:00 GMT"}, now=NOW) == 0.0


def test_retry_after_wins_over_quota_headers() -> None:
    headers = {"Retry-After": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(EPOCH_NOW + 600)}
    assert retry_delay(headers, now=NOW, status=429) == 5.0


def test_mastodon_reset_is_iso_8601_when_the_quota_is_used_up() -> None:
    # docs.joinmastodon.org/api/rate-limits: X-RateLimit-Reset is an ISO 8601 timestamp.
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2024-05-02T08:05:00.019685Z",
    }
    delay = retry_delay(headers, now=NOW)
    assert delay is not None and abs(delay - 300.019685) < 1e-6


def test_mastodon_reset_is_ignored_while_quota_remains() -> None:
    headers = {"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "2024-05-02T08:05:00.000Z"}
    assert retry_delay(headers, now=NOW, status=200) is None


def test_mastodon_reset_counts_on_a_429_without_remaining() -> None:
    assert retry_delay({"X-RateLimit-Reset": "2024-05-02T08:01:00Z"}, now=NOW, status=429) == 60.0


def test_x_reset_is_epoch_seconds() -> None:
    # docs.x.com/fundamentals/rate-limits: x-rate-limit-reset is a Unix timestamp.
    headers = {
        "x-rate-limit-limit": "900",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(int(EPOCH_NOW) + 900),
    }
    assert retry_delay(headers, now=NOW) == 900.0


def test_x_reset_is_ignored_while_quota_remains() -> None:
    headers = {"x-rate-limit-remaining": "847", "x-rate-limit-reset": str(int(EPOCH_NOW) + 900)}
    assert retry_delay(headers, now=NOW, status=201) is None


def test_discord_reset_epoch_with_fraction() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{EPOCH_NOW + 2.5:.3f}"}
    assert retry_delay(headers, now=NOW) == pytest.approx(2.5)


def test_discord_reset_after_wins_over_reset() -> None:
    headers = {
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(EPOCH_NOW + 60),
        "X-RateLimit-Reset-After": "1.25",
    }
    assert retry_delay(headers, now=NOW) == 1.25


def test_discord_reset_after_needs_a_used_up_quota_or_429() -> None:
    assert retry_delay({"X-RateLimit-Remaining": "4", "X-RateLimit-Reset-After": "1.25"}, now=NOW) is None
    assert retry_delay({"X-RateLimit-Reset-After": "1.25"}, now=NOW, status=429) == 1.25


def test_atproto_ratelimit_reset_is_epoch_seconds() -> None:
    # Bluesky PDS: RateLimit-Limit/-Remaining/-Reset (epoch seconds) and RateLimit-Policy.
    headers = {
        "RateLimit-Limit": "3000",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(int(EPOCH_NOW) + 240),
        "RateLimit-Policy": "3000;w=300",
    }
    assert retry_delay(headers, now=NOW) == 240.0


def test_ietf_draft_ratelimit_reset_is_delta_seconds() -> None:
    assert retry_delay({"RateLimit-Remaining": "0", "RateLimit-Reset": "50"}, now=NOW) == 50.0


def test_discord_json_retry_after_float() -> None:
    # discord.com/developers/docs/topics/rate-limits: the 429 body's retry_after is float seconds.
    body = {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}
    assert retry_delay({}, body, now=NOW, status=429) == 64.57


def test_telegram_parameters_retry_after() -> None:
    body = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }
    assert retry_delay({}, body, now=NOW, status=429) == 5.0


def test_nothing_said_is_none() -> None:
    assert retry_delay({}, now=NOW) is None
    assert retry_delay({}, now=NOW, status=429) is None
    assert retry_delay({"Content-Type": "text/plain"}, "not json", now=NOW, status=503) is None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": ""}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "tomorrow"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2024-13-45T99:00:00Z"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "nan"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "inf"}, None),
        ({"X-RateLimit-Remaining": "none", "X-RateLimit-Reset-After": "3"}, None),
        ({"x-rate-limit-remaining": "0", "x-rate-limit-reset": ""}, None),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "a while"}, None),
        ({}, {"retry_after": "abc"}),
        ({}, {"retry_after": True}),
        ({}, {"retry_after": -1}),
        ({}, {"retry_after": None}),
        ({}, {"parameters": {"retry_after": "later"}}),
        ({}, {"parameters": "retry_after"}),
        ({}, ["retry_after", 5]),
    ],
)
def test_garbage_values_are_none(headers: dict[str, str], body: Any) -> None:
    assert retry_delay(headers, body, now=NOW) is None


def test_garbage_signal_falls_through_to_a_valid_one() -> None:
    headers = {"Retry-After": "soon", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "3"}
    assert retry_delay(headers, {"retry_after": "abc"}, now=NOW) == 3.0


# --- classify -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (201, Outcome.OK),
        (204, Outcome.OK),
        (299, Outcome.OK),
        (304, Outcome.NOT_MODIFIED),
        (300, Outcome.REDIRECT),
        (301, Outcome.REDIRECT),
        (302, Outcome.REDIRECT),
        (307, Outcome.REDIRECT),
        (308, Outcome.REDIRECT),
        (429, Outcome.RATE_LIMITED),
        (408, Outcome.UNAVAILABLE),
        (425, Outcome.UNAVAILABLE),
        (500, Outcome.UNAVAILABLE),
        (502, Outcome.UNAVAILABLE),
        (503, Outcome.UNAVAILABLE),
        (504, Outcome.UNAVAILABLE),
        (599, Outcome.UNAVAILABLE),
        (401, Outcome.AUTH),
        (403, Outcome.AUTH),
        (404, Outcome.GONE),
        (410, Outcome.GONE),
        (426, Outcome.UPGRADE),
        (400, Outcome.REJECTED),
        (405, Outcome.REJECTED),
        (409, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (422, Outcome.REJECTED),
        (451, Outcome.REJECTED),
    ],
)
def test_classify(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_only_rate_limited_and_unavailable_are_retryable() -> None:
    assert {o for o in Outcome if o.retryable} == {Outcome.RATE_LIMITED, Outcome.UNAVAILABLE}


def test_answer_helpers() -> None:
    answer = Answer(status=429, headers={}, body=b'{"retry_after": 1.5}', url="http://x/")
    assert answer.outcome is Outcome.RATE_LIMITED
    assert not answer.ok
    assert answer.json() == {"retry_after": 1.5}
    assert Answer(200, {}, b"<html>", "http://x/").json() is None
    assert Answer(200, {}, b"a  \n b" + b"c" * 500, "http://x/").text(10) == "a bcccccc…"


# --- HttpClient against real local servers --------------------------------------------------------


@pytest.fixture
def server() -> Iterator[HTTPTestServer]:
    """A real HTTP server on 127.0.0.1 with programmable routes (one connection per response)."""
    with HTTPTestServer(root=None) as running:
        yield running


@pytest.fixture
def client() -> Iterator[HttpClient]:
    """A client with short limits; 127.0.0.1 is allowed by the guard when a test asks for it."""
    with HttpClient(timeout=2.0, max_bytes=100_000, allow_hosts=["127.0.0.1"]) as http:
        yield http


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_answer_carries_status_headers_body_and_user_agent(server: HTTPTestServer) -> None:
    server.content("/page", b"<p>hi</p>", headers={"X-Extra": "1"})
    with HttpClient(user_agent="SyndicateTest/1.0") as http:
        answer = http.get(server.url("/page"))
    assert (answer.status, answer.body, answer.url) == (200, b"<p>hi</p>", server.url("/page"))
    assert answer.headers["x-extra"] == "1"
    assert server.requests[0].header("User-Agent") == "SyndicateTest/1.0"


def test_dripping_body_hits_the_deadline(server: HTTPTestServer) -> None:
    # One byte per 0.3 s never trips the 0.5 s read timeout; only the whole-exchange deadline
    # (3 x timeout) stops it. The bound asserted is the point of the deadline: the drip takes 30 s.
    server.content("/drip", (b"x" for _ in range(100)), "text/plain", chunk_delay=0.3)
    started = time.monotonic()
    with HttpClient(timeout=0.5) as http, pytest.raises(TransportError) as caught:
        http.get(server.url("/drip"))
    assert time.monotonic() - started < 3 * 0.5 + 1.5
    assert caught.value.sent is True
    assert not caught.value.too_large
    assert "too long" in str(caught.value)


def test_slow_headers_are_a_timeout_after_sending(server: HTTPTestServer) -> None:
    server.route("/slow", Response(200, b"late", delay=3.0))
    with HttpClient(timeout=0.3) as http, pytest.raises(TransportError) as caught:
        http.get(server.url("/slow"))
    assert caught.value.sent is True


def test_a_caller_deadline_already_passed_sends_nothing(server: HTTPTestServer, client: HttpClient) -> None:
    server.content("/page", b"hi")
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/page"), deadline=time.monotonic() - 1)
    assert caught.value.sent is False
    assert server.requests == []


@pytest.mark.parametrize("content_length", [True, False])
def test_size_cap(server: HTTPTestServer, client: HttpClient, content_length: bool) -> None:
    server.huge("/big", size=5_000_000, content_length=content_length)
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/big"))
    assert caught.value.too_large is True
    assert caught.value.sent is True
    assert ("Content-Length" in str(caught.value)) is content_length


def test_body_of_exactly_the_cap_is_fine(server: HTTPTestServer, client: HttpClient) -> None:
    server.huge("/edge", size=100_000, content_length=False)
    assert len(client.get(server.url("/edge")).body) == 100_000


def test_per_request_max_bytes_overrides_the_client(server: HTTPTestServer, client: HttpClient) -> None:
    server.huge("/mid", size=50_000, content_length=False)
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/mid"), max_bytes=10_000)
    assert caught.value.too_large


def test_gzip_bomb_is_counted_at_its_inflated_size(server: HTTPTestServer, client: HttpClient) -> None:
    server.gzip("/bomb", b"\0" * 20_000_000)  # about 20 KB on the wire, under the cap
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/bomb"))
    assert caught.value.too_large is True


def test_chunked_gzip_bomb(server: HTTPTestServer, client: HttpClient) -> None:
    compressed = gzip.compress(b"\0" * 20_000_000)
    pieces = [compressed[i : i + 4096] for i in range(0, len(compressed), 4096)]
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    server.route("/bomb", Response(200, pieces, headers, chunked=True))
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/bomb"))
    assert caught.value.too_large is True


def test_gzip_within_the_cap_is_decoded(server: HTTPTestServer, client: HttpClient) -> None:
    page = b"<p>compressed</p>" * 1000
    server.gzip("/zipped", page)
    assert client.get(server.url("/zipped")).body == page


def test_broken_gzip_is_undecodable(server: HTTPTestServer, client: HttpClient) -> None:
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    server.route("/broken", Response(200, b"not gzip at all", headers))
    with pytest.raises(TransportError) as caught:
        client.get(server.url("/broken"))
    assert caught.value.undecodable is True
    assert not caught.value.too_large


def test_connection_refused_was_not_sent(client: HttpClient) -> None:
    with pytest.raises(TransportError) as caught:
        client.post(f"http://127.0.0.1:{_free_port()}/hook", json={"a": 1})
    assert caught.value.sent is False
    assert not caught.value.blocked


def test_connection_dropped_after_the_request_may_have_been_sent() -> None:
    # A server that reads the request and hangs up without answering: the remote may have acted.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with HttpClient(timeout=5) as http, pytest.raises(TransportError) as caught:
            http.post(f"http://127.0.0.1:{port}/hook", json={"a": 1})
    finally:
        thread.join(timeout=5)
        listener.close()
    assert caught.value.sent is True


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/file", "http://[::1/"])
def test_invalid_urls_are_blocked_without_guard(client: HttpClient, url: str) -> None:
    with pytest.raises(TransportError) as caught:
        client.get(url)
    assert caught.value.blocked is True
    assert caught.value.sent is False


def test_guard_refuses_a_private_address_before_connecting(server: HTTPTestServer) -> None:
    server.content("/page", b"hi")
    with HttpClient() as http, pytest.raises(TransportError) as caught:
        http.get(server.url("/page"), guard=True)
    assert caught.value.blocked is True
    assert "loopback" in str(caught.value)
    assert server.requests == []


def test_guard_lets_allowed_hosts_through(server: HTTPTestServer) -> None:
    server.content("/page", b"hi")
    with HttpClient(allow_hosts=[server.host_port]) as http:
        assert http.get(server.url("/page"), guard=True).body == b"hi"
        with pytest.raises(TransportError) as caught:
            http.check("http://169.254.169.254/latest/meta-data/")
    assert caught.value.blocked


def test_guard_off_sends_operator_urls_as_they_are(server: HTTPTestServer) -> None:
    server.content("/page", b"hi")
    with HttpClient() as http:
        assert http.get(server.url("/page")).body == b"hi"
    assert len(server.requests) == 1


def test_redirects_are_returned_not_followed(server: HTTPTestServer, client: HttpClient) -> None:
    server.redirect("/old", "/new", status=301)
    server.content("/new", b"moved here")
    answer = client.get(server.url("/old"))
    assert answer.status == 301
    assert answer.outcome is Outcome.REDIRECT
    assert answer.headers["Location"] == "/new"
    assert [r.path for r in server.requests] == ["/old"]


def test_before_body_may_refuse_the_body(server: HTTPTestServer, client: HttpClient) -> None:
    server.content("/image", b"\x89PNG" + b"\0" * 1000, "image/png")

    class Refused(Exception):
        pass

    def refuse_images(response: requests.Response) -> None:
        if response.headers.get("Content-Type", "").startswith("image/"):
            raise Refused(response.url)

    with pytest.raises(Refused):
        client.get(server.url("/image"), before_body=refuse_images)


def test_before_body_may_leave_the_body_unread(server: HTTPTestServer, client: HttpClient) -> None:
    server.huge("/error-page", size=5_000_000, content_length=False)  # over the cap, never read
    answer = client.get(server.url("/error-page"), before_body=lambda response: False)
    assert (answer.status, answer.body) == (200, b"")


# --- connection reuse -----------------------------------------------------------------------------


@dataclass
class KeepAlive:
    """A keep-alive (HTTP/1.1) server that records each request with the client's address."""

    url: str = ""
    seen: list[tuple[str, tuple[str, int], dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def keep_alive() -> Iterator[KeepAlive]:
    state = KeepAlive()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def _answer(self, body: bytes) -> None:
            state.seen.append((self.command, self.client_address, dict(self.headers.items()), body))
            payload = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_the_session_is_reused_across_requests(keep_alive: KeepAlive) -> None:
    with HttpClient() as http:
        first = http.get(keep_alive.url + "/a")
        http.post(keep_alive.url + "/b", json={"text": "bună"})
        http.post(keep_alive.url + "/c", data={"k": "v"}, headers={"Authorization": "Bearer t"})
        http.get(keep_alive.url + "/d", params={"q": "1"})
    assert first.json() == {"ok": True}
    assert len(keep_alive.seen) == 4
    assert len({address for _, address, _, _ in keep_alive.seen}) == 1  # one connection for all four
    methods = [method for method, _, _, _ in keep_alive.seen]
    assert methods == ["GET", "POST", "POST", "GET"]
    assert json.loads(keep_alive.seen[1][3]) == {"text": "bună"}
    assert keep_alive.seen[2][3] == b"k=v"
    assert keep_alive.seen[2][2]["Authorization"] == "Bearer t"


def test_a_given_session_is_used_and_left_open(keep_alive: KeepAlive) -> None:
    session = requests.Session()
    http = HttpClient(session=session)
    http.get(keep_alive.url + "/a")
    http.close()
    http.get(keep_alive.url + "/b")  # still usable: the client does not own it
    session.close()
    assert http.session is session
    assert len(keep_alive.seen) == 2


def test_an_own_session_ignores_proxy_settings_from_the_environment(
    keep_alive: KeepAlive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    with HttpClient() as http:
        assert http.session.trust_env is False
        assert http.get(keep_alive.url + "/a").status == 200
