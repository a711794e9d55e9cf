"""The SSRF guard (worker.ssrf, re-exported by worker.fetch) and the Fetcher against a real local server."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer, Response
from worker import ssrf
from worker.errors import (
    BlockedURL,
    FetchError,
    HTTPStatusError,
    TooLarge,
    TransientFetchError,
    UnsupportedContent,
)
from worker.fetch import Fetcher, check_url, parse_retry_after
from worker.fetch import http as fetch_http
from worker.http import WatchedAdapter

# --- check_url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/admin",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.1/router",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a00:1]/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://017700000001/",
    ],
)
def test_private_loopback_and_odd_addresses_are_blocked(url: str) -> None:
    with pytest.raises(BlockedURL):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "//example.com/no-scheme",
        "http:///no-host",
        "http://user:secret@example.com/",
        "http://user@example.com/",
        "http://example.com:99999/",
    ],
)
def test_bad_schemes_credentials_and_malformed_urls_are_blocked(url: str) -> None:
    with pytest.raises(BlockedURL):
        check_url(url, allow_hosts=["example.com"])


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f000001", "127.1"])
def test_numeric_host_forms_resolve_to_loopback_which_the_address_check_refuses(host: str) -> None:
    addresses = ssrf._resolve(host, 80, f"http://{host}/")
    assert addresses == [ipaddress.ip_address("127.0.0.1")]
    assert ssrf._blocked_reason(addresses[0]) == "a loopback"


def _fake_dns(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def resolve(host: str, port: int, url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(a) for a in addresses]

    monkeypatch.setattr(ssrf, "_resolve", resolve)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:808:808::"])
def test_public_addresses_pass(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    _fake_dns(monkeypatch, address)
    check_url("https://partner.example/news/")


def test_a_host_with_any_private_address_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, "93.184.216.34", "10.1.2.3")
    with pytest.raises(BlockedURL, match="private"):
        check_url("https://partner.example/news/")


def test_unresolvable_host_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fail)
    with pytest.raises(TransientFetchError, match="cannot resolve"):
        check_url("https://no-such-partner.example/")


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/", ["127.0.0.1"]),
        ("http://127.0.0.1:8080/", ["127.0.0.1:8080"]),
        ("http://localhost/", ["LocalHost"]),
        ("http://[::1]/", ["[::1]"]),
        ("http://[::1]:81/", ["::1"]),
        ("https://10.0.0.5/", ["10.0.0.5:443"]),
    ],
)
def test_allow_hosts_exempts_host_or_host_port(url: str, allow: list[str]) -> None:
    check_url(url, allow_hosts=allow)


def test_allow_hosts_port_must_match() -> None:
    with pytest.raises(BlockedURL):
        check_url("http://127.0.0.1:8080/", allow_hosts=["127.0.0.1:9090"])


# --- Fetcher: basics ----------------------------------------------------------------------------


def test_get_returns_body_headers_and_validators(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    url = http_server.url("/gazette/news/")
    result = fetcher.get(url)
    assert result.status == 200
    assert result.url == result.final_url == url
    assert b"Riverside Gazette" in result.body
    assert result.content_type == "text/html; charset=utf-8"
    assert result.media_type == "text/html"
    assert result.charset == "utf-8"
    assert result.headers["content-type"] == result.headers["Content-Type"]
    assert result.etag and result.etag.startswith('"')
    assert result.last_modified == "Fri, 03 May 2024 10:00:00 GMT"
    assert not result.not_modified


def test_user_agent_and_accept_are_sent(http_server: HTTPTestServer, policy: FetchPolicy) -> None:
    with Fetcher(policy.model_copy(update={"user_agent": "SyndicateTest/1.0 (+ops@example.org)"})) as fetcher:
        fetcher.get(http_server.url("/gazette/news/"))
        fetcher.get(http_server.url("/gazette/feeds/rss.xml"), accept="application/rss+xml")
    robots, first, second = http_server.requests
    assert robots.path == "/robots.txt" and robots.header("User-Agent") == first.header("User-Agent")
    assert first.header("User-Agent") == "SyndicateTest/1.0 (+ops@example.org)"
    assert first.header("Accept") == fetch_http.DEFAULT_ACCEPT
    assert second.header("Accept") == "application/rss+xml"
    assert "gzip" in (first.header("Accept-Encoding") or "")


def test_local_server_is_blocked_without_allow_hosts(http_server: HTTPTestServer) -> None:
    with Fetcher(FetchPolicy()) as fetcher, pytest.raises(BlockedURL):
        fetcher.get(http_server.url("/gazette/news/"))
    assert http_server.requests == []


class _RecordingSession(requests.Session):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_a_passed_in_session_is_used_and_left_open(http_server: HTTPTestServer, policy: FetchPolicy) -> None:
    session = _RecordingSession()
    session.mount("http://", WatchedAdapter())  # pins connections to the addresses the guard checked
    fetcher = Fetcher(policy, session=session)
    assert fetcher.get(http_server.url("/gazette/news/")).status == 200
    fetcher.close()
    assert fetcher.session is session
    assert not session.closed
    session.close()


def test_a_passed_in_session_that_cannot_pin_is_refused_before_sending(
    http_server: HTTPTestServer, policy: FetchPolicy
) -> None:
    # A stock adapter would resolve the name again when connecting, where the guard cannot look.
    with requests.Session() as session, Fetcher(policy, session=session) as fetcher:
        with pytest.raises(BlockedURL, match="WatchedAdapter"):
            fetcher.get(http_server.url("/gazette/news/"))
    assert http_server.requests == []


def test_an_own_session_is_closed_and_ignores_the_environment(
    policy: FetchPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "Session", _RecordingSession)
    fetcher = Fetcher(policy)
    assert fetcher.session.trust_env is False
    fetcher.close()
    assert fetcher.session.closed  # type: ignore[attr-defined]


# --- redirects ----------------------------------------------------------------------------------


def test_redirects_are_followed_to_the_final_url(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.redirect("/old", "/moved", status=301)
    http_server.redirect("/moved", "gazette/news/", status=308)
    result = fetcher.get(http_server.url("/old"))
    assert result.final_url == http_server.url("/gazette/news/")
    assert result.url == http_server.url("/old")
    assert [r.path for r in http_server.requests] == ["/robots.txt", "/old", "/moved", "/gazette/news/"]


def test_too_many_redirects(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.redirect("/a", "/b")
    http_server.redirect("/b", "/a")
    with pytest.raises(HTTPStatusError, match="redirects"):
        fetcher.get(http_server.url("/a"))
    # max_redirects=3: the first request and three hops, after the one robots.txt
    assert len(http_server.requests) == 5


def test_redirects_disabled(http_server: HTTPTestServer, policy: FetchPolicy) -> None:
    http_server.redirect("/a", "/gazette/news/")
    with Fetcher(policy.model_copy(update={"max_redirects": 0})) as fetcher, pytest.raises(HTTPStatusError):
        fetcher.get(http_server.url("/a"))


def test_redirect_without_location(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.status("/a", 302)
    with pytest.raises(HTTPStatusError, match="Location"):
        fetcher.get(http_server.url("/a"))


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/gazette/news/",
        "http://2130706433:{port}/gazette/news/",
        "file:///etc/passwd",
    ],
)
def test_redirect_from_an_allowed_host_to_a_blocked_one_is_blocked(
    http_server: HTTPTestServer, fetcher: Fetcher, target: str
) -> None:
    http_server.redirect("/leak", target.format(port=http_server.port))
    with pytest.raises(BlockedURL):
        fetcher.get(http_server.url("/leak"))
    assert [r.path for r in http_server.requests] == ["/robots.txt", "/leak"]


def test_redirect_to_a_private_address_after_a_public_looking_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    # "partner.example" stands for a public partner site: it resolves to 127.0.0.2, which the
    # policy admits as the guard admits a public address, and is served there; it then redirects
    # to the loopback address 127.0.0.1, which the guard refuses.
    real_resolve = ssrf._resolve

    def resolve(host: str, port: int, url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if host == "partner.example":
            return [ipaddress.ip_address("127.0.0.2")]
        return real_resolve(host, port, url)

    monkeypatch.setattr(ssrf, "_resolve", resolve)
    policy = FetchPolicy(allow_hosts=["127.0.0.2"])
    with HTTPTestServer(host="127.0.0.2") as partner, Fetcher(policy) as fetcher:
        with pytest.raises(BlockedURL, match="loopback"):
            fetcher.get(f"http://127.0.0.1:{partner.port}/x")  # not admitted: refused at once
        partner.redirect("/story", "http://127.0.0.1/admin")
        port = partner.port
        with pytest.raises(BlockedURL, match="loopback"):
            fetcher.get(f"http://partner.example:{port}/story")
    assert [r.path for r in partner.requests] == ["/robots.txt", "/story"]
    assert {r.header("Host") for r in partner.requests} == {f"partner.example:{port}"}


# --- status codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_permanent_client_errors(http_server: HTTPTestServer, fetcher: Fetcher, status: int) -> None:
    http_server.status("/gone", status)
    with pytest.raises(HTTPStatusError) as info:
        fetcher.get(http_server.url("/gone"))
    assert info.value.status == status
    assert info.value.url == http_server.url("/gone")
    assert not isinstance(info.value, TransientFetchError)


def test_missing_fixture_is_404(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    with pytest.raises(HTTPStatusError) as info:
        fetcher.get(http_server.url("/gazette/no-such-page.html"))
    assert info.value.status == 404


def test_503_with_retry_after_seconds(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.status("/busy", 503, headers={"Retry-After": "120"})
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/busy"))
    assert info.value.status == 503
    assert info.value.retry_after == 120.0


def test_429_with_retry_after_date(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    http_server.status("/limited", 429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/limited"))
    assert info.value.status == 429
    assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 90


@pytest.mark.parametrize("status", [408, 500, 502, 504])
def test_other_transient_statuses(http_server: HTTPTestServer, fetcher: Fetcher, status: int) -> None:
    http_server.status("/flaky", status)
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/flaky"))
    assert info.value.status == status
    assert info.value.retry_after is None


def test_429_quota_headers_are_read(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.status("/limited", 429, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "45"})
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/limited"))
    assert info.value.retry_after == 45.0


def test_425_too_early_is_transient(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.status("/early", 425)
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/early"))
    assert info.value.status == 425


def test_an_error_page_body_is_not_read(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    # Over max_bytes, but the status alone decides: the answer is a retryable 503, not TooLarge.
    def answer(_request: object) -> Response:
        return Response(503, (b"a" * 65536 for _ in range(100)), {"Content-Type": "text/html"})

    http_server.route("/down", answer)
    with pytest.raises(TransientFetchError) as info:
        fetcher.get(http_server.url("/down"))
    assert info.value.status == 503


@pytest.mark.parametrize("status", [201, 204, 206])
def test_other_2xx_are_not_documents(http_server: HTTPTestServer, fetcher: Fetcher, status: int) -> None:
    http_server.route("/odd", Response(status, b"<p>partial</p>", {"Content-Type": "text/html"}))
    with pytest.raises(HTTPStatusError) as info:
        fetcher.get(http_server.url("/odd"))
    assert info.value.status == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("30", 30.0), (" 7 ", 7.0), ("soon", None), ("", None), (None, None), ("-5", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_dates() -> None:
    now = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 03 May 2024 12:02:00 GMT", now) == 120.0
    assert parse_retry_after("Fri, 03 May 2024 11:00:00 GMT", now) == 0.0


# --- timeouts and connection errors -------------------------------------------------------------


def test_read_timeout_is_transient(http_server: HTTPTestServer, policy: FetchPolicy) -> None:
    http_server.slow("/slow", delay=5.0)
    started = time.monotonic()
    with Fetcher(policy.model_copy(update={"timeout": 0.5})) as fetcher, pytest.raises(TransientFetchError):
        fetcher.get(http_server.url("/slow"))
    assert time.monotonic() - started < 3


def test_slow_drip_body_hits_the_total_deadline(http_server: HTTPTestServer, policy: FetchPolicy) -> None:
    http_server.content("/drip", (b"<p>%d</p>" % i for i in range(40)), chunk_delay=0.2)
    started = time.monotonic()
    with Fetcher(policy.model_copy(update={"timeout": 0.5})) as fetcher, pytest.raises(TransientFetchError):
        fetcher.get(http_server.url("/drip"))
    assert time.monotonic() - started < 4  # the drip alone would take 8 s


def test_connection_refused_is_transient(policy: FetchPolicy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Fetcher(policy) as fetcher, pytest.raises(TransientFetchError, match="connection"):
        fetcher.get(f"http://127.0.0.1:{port}/")


# --- size limits --------------------------------------------------------------------------------


def test_too_large_by_content_length(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.huge("/big", size=50_000_000, content_length=True)
    with pytest.raises(TooLarge, match="Content-Length"):
        fetcher.get(http_server.url("/big"))


def test_too_large_without_content_length(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.huge("/big", size=50_000_000, content_length=False)
    with pytest.raises(TooLarge, match="body exceeds"):
        fetcher.get(http_server.url("/big"))


def test_body_of_exactly_max_bytes_is_fine(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.huge("/edge", size=1_000_000, content_length=False)
    assert len(fetcher.get(http_server.url("/edge")).body) == 1_000_000


def test_gzip_body_is_decoded(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    page = b"<html><body>" + b"<p>compressed</p>" * 1000 + b"</body></html>"
    http_server.gzip("/zipped", page)
    assert fetcher.get(http_server.url("/zipped")).body == page


def test_gzip_bomb_is_counted_at_its_decoded_size(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.gzip("/bomb", b"\0" * 20_000_000)  # about 20 KB on the wire
    with pytest.raises(TooLarge):
        fetcher.get(http_server.url("/bomb"))


def test_chunked_transfer_encoding(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    parts = [b"<html><body>", b"<p>one</p>" * 500, b"<p>two</p>", b"</body></html>"]
    http_server.route("/chunked", Response(200, parts, {"Content-Type": "text/html"}, chunked=True))
    assert fetcher.get(http_server.url("/chunked")).body == b"".join(parts)


def test_chunked_gzip_bomb(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    compressed = gzip.compress(b"\0" * 20_000_000)
    pieces = [compressed[i : i + 4096] for i in range(0, len(compressed), 4096)]
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    http_server.route("/bomb", Response(200, pieces, headers, chunked=True))
    with pytest.raises(TooLarge):
        fetcher.get(http_server.url("/bomb"))


def test_broken_gzip_is_a_fetch_error(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    http_server.route("/broken", Response(200, b"not gzip at all", headers))
    with pytest.raises(FetchError):
        fetcher.get(http_server.url("/broken"))


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "image/jpeg", "application/pdf", "video/mp4", "audio/mpeg", "application/zip"],
)
def test_non_documents_are_unsupported(
    http_server: HTTPTestServer, fetcher: Fetcher, content_type: str
) -> None:
    http_server.content("/file", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type)
    with pytest.raises(UnsupportedContent):
        fetcher.get(http_server.url("/file"))


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html; charset=ISO-8859-1",
        "application/xhtml+xml",
        "application/xml",
        "text/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",
        "text/plain",
        "application/x-gzip",
    ],
)
def test_documents_are_accepted(http_server: HTTPTestServer, fetcher: Fetcher, content_type: str) -> None:
    http_server.content("/doc", b"<doc/>", content_type)
    result = fetcher.get(http_server.url("/doc"))
    assert result.body == b"<doc/>"
    assert result.content_type == content_type


def test_octet_stream_is_sniffed(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.content("/xml", b"<?xml version='1.0'?><urlset/>", "application/octet-stream")
    http_server.content("/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "application/octet-stream")
    http_server.route("/untyped", Response(200, b"\x89PNG\r\n\x1a\n"))
    assert fetcher.get(http_server.url("/xml")).body.startswith(b"<?xml")
    for path in ("/png", "/untyped"):
        with pytest.raises(UnsupportedContent):
            fetcher.get(http_server.url(path))


def test_gzipped_sitemap_file_is_fetched_raw(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    result = fetcher.get(http_server.url("/gazette/sitemaps/news-2024-05.xml.gz"))
    assert result.media_type == "application/x-gzip"
    assert result.body[:2] == b"\x1f\x8b"


# --- conditional requests -----------------------------------------------------------------------


def test_conditional_get_with_etag_returns_304(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    url = http_server.url("/gazette/feeds/rss.xml")
    first = fetcher.get(url)
    second = fetcher.get(url, etag=first.etag)
    assert second.status == 304
    assert second.not_modified
    assert second.body == b""
    assert second.etag == first.etag
    assert http_server.requests[-1].header("If-None-Match") == first.etag


def test_conditional_get_with_last_modified(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    url = http_server.url("/gazette/feeds/rss.xml")
    first = fetcher.get(url)
    second = fetcher.get(url, last_modified=first.last_modified)
    assert second.not_modified
    assert second.last_modified == first.last_modified
    assert http_server.requests[-1].header("If-Modified-Since") == first.last_modified


def test_changed_resource_returns_200_despite_validators(
    http_server: HTTPTestServer, fetcher: Fetcher
) -> None:
    result = fetcher.get(http_server.url("/gazette/feeds/rss.xml"), etag='"stale"')
    assert result.status == 200
    assert result.body


def test_304_validators_fall_back_to_the_ones_sent(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.route("/bare304", Response(304))
    stamp = "Fri, 03 May 2024 10:00:00 GMT"
    result = fetcher.get(http_server.url("/bare304"), etag='"v1"', last_modified=stamp)
    assert (result.status, result.etag, result.last_modified) == (304, '"v1"', stamp)


def test_unsolicited_304_is_an_error(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.route("/bare304", Response(304))
    with pytest.raises(HTTPStatusError):
        fetcher.get(http_server.url("/bare304"))
