"""robots.txt through the Fetcher on real local servers: what is never requested, caching, RFC 9309 errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker.errors import BlockedURL, Disallowed, HostBusy, TransientFetchError
from worker.fetch import Fetcher
from worker.fetch.robots import RobotsRules, origin_of, product_token

ROBOTS = b"""User-agent: *
Disallow: /private/

User-agent: Syndicate
Disallow: /gazette/members/
Allow: /gazette/members/open
Crawl-delay: 0.5

Sitemap: http://example.org/sitemap.xml
Sitemap: http://example.org/news-sitemap.xml
"""


class Clock:
    """A settable epoch clock, so cache expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site() -> Iterator[HTTPTestServer]:
    """The fixture site with a robots.txt for our group."""
    with HTTPTestServer() as server:
        server.content("/robots.txt", ROBOTS, "text/plain")
        yield server


@pytest.fixture
def clock() -> Clock:
    """A clock tests move by hand."""
    return Clock()


def _fetcher(policy: FetchPolicy, clock: Clock, redis: object = None) -> Fetcher:
    fetcher = Fetcher(policy.model_copy(update={"user_agent": "Syndicate/0.1 (test)"}), redis=redis)
    fetcher.robots.clock = clock
    return fetcher


def _paths(server: HTTPTestServer) -> list[str]:
    return [r.path for r in server.requests]


def test_a_disallowed_url_is_never_requested(site: HTTPTestServer, policy: FetchPolicy, clock: Clock) -> None:
    with _fetcher(policy, clock) as fetcher:
        with pytest.raises(Disallowed, match=r"robots\.txt disallows"):
            fetcher.get(site.url("/gazette/members/secret"))
        # Crawl-delay 0.5: robots.txt took the host's turn, so this call waits for the next one.
        assert fetcher.get(site.url("/gazette/news/"), patience=2.0).status == 200
        assert fetcher.robots.allowed(site.url("/gazette/members/open"))
    assert _paths(site) == ["/robots.txt", "/gazette/news/"]


def test_our_group_is_used_not_the_star_group(
    site: HTTPTestServer, policy: FetchPolicy, clock: Clock
) -> None:
    # "/private/" is only disallowed for "*": our own group replaces it (RFC 9309 2.2.1).
    with _fetcher(policy, clock) as fetcher:
        assert fetcher.robots.allowed(site.url("/private/page"))
        assert fetcher.robots.token == "Syndicate"
    assert product_token("Syndicate/0.1 (+https://x)") == "Syndicate"


def test_sitemaps_and_crawl_delay_are_exposed(
    site: HTTPTestServer, policy: FetchPolicy, clock: Clock
) -> None:
    with _fetcher(policy, clock) as fetcher:
        assert fetcher.robots.sitemaps(site.url("/any")) == [
            "http://example.org/sitemap.xml",
            "http://example.org/news-sitemap.xml",
        ]
        assert fetcher.robots.crawl_delay(site.url("/any")) == 0.5
        assert fetcher.host_interval(site.url("/any")) == 0.5
    assert _paths(site) == ["/robots.txt"]


def test_cache_holds_until_expiry_then_refetches(
    site: HTTPTestServer, policy: FetchPolicy, clock: Clock
) -> None:
    with _fetcher(policy.model_copy(update={"robots_ttl": 60.0}), clock) as fetcher:
        fetcher.robots.rules(site.url("/a"))
        clock.now += 59
        fetcher.robots.rules(site.url("/b"))
        assert _paths(site) == ["/robots.txt"]
        site.content("/robots.txt", b"User-agent: *\nDisallow: /gazette/\n", "text/plain")
        clock.now += 2
        with pytest.raises(Disallowed):
            fetcher.get(site.url("/gazette/news/"))
    assert _paths(site) == ["/robots.txt", "/robots.txt"]


def test_cache_is_shared_through_redis_and_expires(
    site: HTTPTestServer, policy: FetchPolicy, clock: Clock, redis_server: RedisServer
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    ttl_policy = policy.model_copy(update={"robots_ttl": 120.0})
    with _fetcher(ttl_policy, clock, client) as first, _fetcher(ttl_policy, clock, client) as second:
        assert first.robots.crawl_delay(site.url("/")) == 0.5
        with pytest.raises(Disallowed):
            second.get(site.url("/gazette/members/x"))  # another "worker": cached verdict, no fetch
        assert _paths(site) == ["/robots.txt"]
        clock.now += 121
        second.robots.rules(site.url("/"))
    assert _paths(site) == ["/robots.txt", "/robots.txt"]
    assert client.exists("syndicate:robots:" + origin_of(site.url("/")))


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_4xx_robots_allows_everything(policy: FetchPolicy, clock: Clock, status: int) -> None:
    with HTTPTestServer() as server, _fetcher(policy, clock) as fetcher:
        server.status("/robots.txt", status)
        assert fetcher.get(server.url("/gazette/news/")).status == 200
        assert fetcher.robots.rules(server.url("/")).state == "allow"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_robots_disallows_for_a_while(policy: FetchPolicy, clock: Clock, status: int) -> None:
    update = {"robots_error_ttl": 300.0}
    with HTTPTestServer() as server, _fetcher(policy.model_copy(update=update), clock) as fetcher:
        server.status("/robots.txt", status)
        with pytest.raises(TransientFetchError, match="unreachable") as caught:
            fetcher.get(server.url("/gazette/news/"))
        assert caught.value.retry_after == 300.0
        clock.now += 100
        with pytest.raises(TransientFetchError):
            fetcher.get(server.url("/gazette/news/"))
        assert _paths(server) == ["/robots.txt"]  # cached: asked once, the page never
        server.content("/robots.txt", b"User-agent: *\nAllow: /\n", "text/plain")
        clock.now += 201
        assert fetcher.get(server.url("/gazette/news/")).status == 200
    assert _paths(server) == ["/robots.txt", "/robots.txt", "/gazette/news/"]


def test_unreachable_robots_means_nothing_is_fetched(policy: FetchPolicy, clock: Clock) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with _fetcher(policy, clock) as fetcher, pytest.raises(TransientFetchError, match="unreachable"):
        fetcher.get(f"http://127.0.0.1:{port}/story")


def test_robots_redirects_are_followed_and_guarded(policy: FetchPolicy, clock: Clock) -> None:
    with HTTPTestServer() as server, _fetcher(policy, clock) as fetcher:
        server.redirect("/robots.txt", "/real-robots.txt", 301)
        server.content("/real-robots.txt", b"User-agent: *\nDisallow: /gazette/\n", "text/plain")
        with pytest.raises(Disallowed):
            fetcher.get(server.url("/gazette/news/"))
        # A robots.txt redirecting somewhere the guard refuses refuses the page too (the target is
        # never fetched); nothing is cached, so the next page asks again.
        server.redirect("/robots.txt", "http://169.254.169.254/latest/meta-data/", 302)
        fetcher.robots.forget(server.url("/"))
        with pytest.raises(BlockedURL, match=r"robots\.txt was refused .*169\.254\.169\.254.*not fetched"):
            fetcher.get(server.url("/gazette/news/"))
        assert fetcher.robots.cached(server.url("/")) is None
    assert _paths(server) == ["/robots.txt", "/real-robots.txt", "/robots.txt"]


def test_redirect_hops_are_checked_against_robots(policy: FetchPolicy, clock: Clock) -> None:
    with HTTPTestServer() as server, _fetcher(policy, clock) as fetcher:
        server.content("/robots.txt", b"User-agent: *\nDisallow: /gazette/members/\n", "text/plain")
        server.redirect("/go", "/gazette/members/list")
        with pytest.raises(Disallowed):
            fetcher.get(server.url("/go"))
    assert _paths(server) == ["/robots.txt", "/go"]


def test_robots_fetch_takes_a_turn_of_the_host_limit(policy: FetchPolicy, clock: Clock) -> None:
    # robots.txt is a request like any other: right after it the page must wait its turn.
    with HTTPTestServer() as server, _fetcher(policy.model_copy(update={"host_interval": 30.0}), clock) as f:
        with pytest.raises(HostBusy) as caught:
            f.get(server.url("/gazette/news/"))
        assert 29 < (caught.value.retry_after or 0) <= 31
    assert _paths(server) == ["/robots.txt"]


def test_robots_can_be_switched_off(policy: FetchPolicy, clock: Clock) -> None:
    with HTTPTestServer() as server, _fetcher(policy.model_copy(update={"robots": False}), clock) as fetcher:
        server.content("/robots.txt", b"User-agent: *\nDisallow: /\n", "text/plain")
        assert fetcher.get(server.url("/gazette/news/")).status == 200
    assert _paths(server) == ["/gazette/news/"]


def test_robots_fetch_is_ssrf_guarded_for_ingest(policy: FetchPolicy, clock: Clock) -> None:
    from worker.ssrf import HostRule

    with HTTPTestServer() as server:
        deny = [HostRule(local=True, port=server.port, label="Syndicate's web app")]
        with Fetcher(policy, deny=deny) as fetcher, pytest.raises(BlockedURL, match="web app"):
            fetcher.get(server.url("/gazette/news/"), ingest=True)
    assert server.requests == []


def test_stored_rules_round_trip() -> None:
    rules = RobotsRules("http://a:80", "rules", "User-agent: *\nDisallow: /x\n", 123.0, "")
    back = RobotsRules.from_json("http://a:80", rules.to_json())
    assert back == rules
    assert not back.allowed("http://a/x/1", "Syndicate")
    assert RobotsRules.from_json("http://a:80", b"not json") is None
