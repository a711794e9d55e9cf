"""DNS rebinding: a guarded request connects to exactly the address the SSRF guard checked.

A resolver of our own (tests/support/rebinding.py) answers a test name with 127.0.0.2 first, which
the policy admits as the guard admits a public address, and with 127.0.0.1 afterwards, where an
"internal" server listens on the same port. Both are real servers that record every request; the
internal one must never see one, whatever the number of lookups before the name rebinds.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer
from tests.support.rebinding import RebindingResolver, Recorder
from worker.errors import BlockedURL, FetchError, TransportError
from worker.fetch import Fetcher
from worker.http import HttpClient, WatchedAdapter
from worker.ssrf import Guard

STAND_IN = "127.0.0.2"  # the public address the name stands for
PUBLIC_PAGE = (
    b"<html><body><article><h1>The public page</h1><p>From the checked address.</p></article></body></html>"
)
INTERNAL_PAGE = b"<html><body><p>INTERNAL: never to be fetched</p></body></html>"


class Pair:
    """The public stand-in (127.0.0.2) and the internal server (127.0.0.1) on one port."""

    def __init__(self) -> None:
        self.internal = Recorder("127.0.0.1", body=INTERNAL_PAGE)
        self.port = self.internal.port
        self.public = Recorder(STAND_IN, self.port, body=PUBLIC_PAGE)

    def url(self, name: str, path: str = "/story") -> str:
        return f"http://{name}:{self.port}{path}"

    def close(self) -> None:
        self.internal.close()
        self.public.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    servers = Pair()
    yield servers
    servers.close()


def _resolver(monkeypatch: pytest.MonkeyPatch, script: Mapping[str, Sequence[str]]) -> RebindingResolver:
    resolver = RebindingResolver(script, real=socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


def test_a_guarded_request_connects_to_the_checked_address_not_a_second_answer(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = _resolver(monkeypatch, {"rb-canary.test": [STAND_IN, "127.0.0.1"]})
    with HttpClient(allow_hosts=[STAND_IN]) as http:
        first = http.get(pair.url("rb-canary.test"), guard=True)
        again = http.get(pair.url("rb-canary.test", "/again"), guard=True)  # the pooled, pinned connection
    assert first.body == PUBLIC_PAGE and again.body == PUBLIC_PAGE
    assert resolver.times("rb-canary.test") == 1  # resolved once, by the connection
    assert [(s.path, s.host, s.local) for s in pair.public.requests()] == [
        ("/story", f"rb-canary.test:{pair.port}", STAND_IN),
        ("/again", f"rb-canary.test:{pair.port}", STAND_IN),
    ]
    # A new connection resolves again, gets the loopback address and refuses it before connecting.
    with (
        HttpClient(allow_hosts=[STAND_IN]) as http,
        pytest.raises(TransportError, match="loopback") as caught,
    ):
        http.get(pair.url("rb-canary.test"), guard=True)
    assert caught.value.blocked and not caught.value.sent
    assert pair.internal.requests() == []


def test_a_pooled_connection_is_checked_again_under_a_stricter_guard(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = _resolver(monkeypatch, {"rb-pool.test": [STAND_IN]})
    with HttpClient(allow_hosts=[STAND_IN]) as http:
        assert http.get(pair.url("rb-pool.test"), guard=True).ok
        with pytest.raises(TransportError, match=r"127\.0\.0\.2") as caught:
            http.get(pair.url("rb-pool.test", "/strict"), guard=Guard())  # public addresses only
        assert caught.value.blocked
        assert http.get(pair.url("rb-pool.test", "/later"), guard=True).ok  # reconnects, pinned again
    assert [s.path for s in pair.public.requests()] == ["/story", "/later"]
    assert resolver.times("rb-pool.test") == 2
    assert pair.internal.requests() == []


@pytest.mark.parametrize(
    ("answer", "match", "blocked"),
    [
        ("93.184.216.34,127.0.0.1", "loopback", True),  # a public address beside a private one
        ("10.0.0.7", "private", True),
        ("::ffff:127.0.0.1", "loopback", True),  # IPv4-mapped IPv6
        ("169.254.169.254", "link-local", True),  # the cloud metadata service
        ("", "cannot resolve", False),  # rebinds to nothing at all
    ],
)
def test_what_the_connection_resolves_is_checked(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, answer: str, match: str, blocked: bool
) -> None:
    _resolver(monkeypatch, {"rb-mixed.test": [answer]})
    with HttpClient(allow_hosts=[STAND_IN]) as http, pytest.raises(TransportError, match=match) as caught:
        http.get(pair.url("rb-mixed.test"), guard=True)
    assert caught.value.blocked is blocked and not caught.value.sent
    assert pair.internal.requests() == [] and pair.public.requests() == []


@pytest.mark.parametrize("public_answers", [1, 2, 3, 4, 5, 6])
def test_the_fetcher_never_reaches_the_internal_server_whenever_the_name_rebinds(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, public_answers: int
) -> None:
    # The name answers the stand-in ``public_answers`` times, then loopback: whichever lookup the
    # switch falls on (the page's check, robots.txt's check or connection, the page's connection),
    # nothing reaches 127.0.0.1; the page comes from the checked address or is refused.
    _resolver(monkeypatch, {"rb-fetch.test": [STAND_IN] * public_answers + ["127.0.0.1"]})
    with Fetcher(FetchPolicy(allow_hosts=[STAND_IN])) as fetcher:
        try:
            result = fetcher.get(pair.url("rb-fetch.test"))
        except BlockedURL as exc:
            assert "loopback" in str(exc)
        else:
            assert result.body == PUBLIC_PAGE
    assert pair.internal.requests() == []


def test_a_redirect_hop_to_a_rebinding_name_is_pinned_too(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A partner admitted by one port redirects to a name that answers the stand-in for the checks
    # of the hop and its robots.txt, then loopback: the hop's connection refuses it.
    _resolver(monkeypatch, {"rb-hop.test": [STAND_IN, STAND_IN, "127.0.0.1"]})
    with HTTPTestServer() as partner:
        partner.redirect("/go", pair.url("rb-hop.test", "/secret"))
        policy = FetchPolicy(allow_hosts=[partner.host_port, STAND_IN])
        with (
            Fetcher(policy) as fetcher,
            pytest.raises(BlockedURL, match=r"robots\.txt was refused.*loopback"),
        ):
            fetcher.get(partner.url("/go"))
        assert [r.path for r in partner.requests] == ["/robots.txt", "/go"]
    assert pair.internal.requests() == [] and pair.public.requests() == []


def test_a_refused_robots_txt_refuses_the_page(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    # The page's check sees the stand-in; robots.txt's sees loopback. Before, that counted as
    # "robots.txt unavailable: allow all", and the page was fetched from wherever the name pointed.
    _resolver(monkeypatch, {"rb-robots.test": [STAND_IN, "127.0.0.1"]})
    with Fetcher(FetchPolicy(allow_hosts=[STAND_IN])) as fetcher:
        with pytest.raises(BlockedURL, match=r"robots\.txt was refused .*loopback.*not fetched"):
            fetcher.get(pair.url("rb-robots.test"))
    assert pair.internal.requests() == [] and pair.public.requests() == []


def test_a_proxy_is_never_used_for_a_guarded_request(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver(monkeypatch, {"rb-proxy.test": [STAND_IN]})
    proxy = Recorder("127.0.0.1")
    session = requests.Session()
    session.mount("http://", WatchedAdapter())
    session.proxies = {"http": f"http://127.0.0.1:{proxy.port}"}
    try:
        http = HttpClient(allow_hosts=[STAND_IN], session=session)
        with pytest.raises(TransportError, match="proxy") as caught:
            http.get(pair.url("rb-proxy.test"), guard=True)
        assert caught.value.blocked
        assert http.get(pair.url("rb-proxy.test")).ok  # an unguarded request may use it
    finally:
        session.close()
        proxy.close()
    assert len(proxy.requests()) == 1
    assert pair.internal.requests() == [] and pair.public.requests() == []


# --- HTTPS: the socket goes to the checked address, TLS and HTTP still speak the name -------------------


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, context: ssl.SSLContext) -> None:
        self.sni: list[str | None] = []
        self.seen: list[tuple[str, str]] = []

        def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            self.sni.append(name)

        context.sni_callback = remember
        self.context = context
        super().__init__((host, 0), _TLSHandler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


class _TLSHandler(BaseHTTPRequestHandler):
    server: _TLSServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append((self.headers.get("Host", ""), self.connection.getsockname()[0]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[_TLSServer, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=rb-tls.test", "-addext", "subjectAltName=DNS:rb-tls.test"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _TLSServer(STAND_IN, context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, cert
    server.shutdown()
    server.server_close()


def test_https_connects_to_the_checked_address_with_sni_certificate_and_host_of_the_name(
    tls_server: tuple[_TLSServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    port = server.server_address[1]
    _resolver(monkeypatch, {"rb-tls.test": [STAND_IN, "127.0.0.1"]})
    with HttpClient(allow_hosts=[STAND_IN]) as http:
        http.session.verify = str(cert)  # the certificate names rb-tls.test only
        answer = http.get(f"https://rb-tls.test:{port}/", guard=True)
        assert answer.body == b"ok"
        # The address itself is not a name the certificate vouches for: verification still checks the name.
        with pytest.raises(TransportError, match=r"certificate|hostname|match"):
            http.get(f"https://{STAND_IN}:{port}/", guard=True)
    assert server.sni[0] == "rb-tls.test"
    assert server.seen == [(f"rb-tls.test:{port}", STAND_IN)]


def test_a_session_without_the_pinning_adapter_is_refused_for_guarded_requests(pair: Pair) -> None:
    with requests.Session() as session:
        http = HttpClient(allow_hosts=[STAND_IN], session=session)
        with pytest.raises(TransportError, match="WatchedAdapter") as caught:
            http.get(f"http://{STAND_IN}:{pair.port}/", guard=True)
        assert caught.value.blocked
        assert http.get(f"http://{STAND_IN}:{pair.port}/plain").ok  # operator URLs go as before
    assert [s.path for s in pair.public.requests()] == ["/plain"]


def test_fetch_errors_name_the_refusal(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the article's failure reason will say: the name, the address and why.
    _resolver(monkeypatch, {"rb-reason.test": [STAND_IN, "127.0.0.1"]})
    with Fetcher(FetchPolicy(allow_hosts=[STAND_IN], robots=False)) as fetcher:
        with pytest.raises(FetchError) as caught:
            fetcher.get(pair.url("rb-reason.test"))
    assert isinstance(caught.value, BlockedURL)
    assert "'rb-reason.test' resolves to a loopback address 127.0.0.1" in str(caught.value)
    assert pair.internal.requests() == []
