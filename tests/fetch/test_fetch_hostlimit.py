"""The per-host limiter on a real Redis and in process; the Fetcher raises HostBusy before it sends."""

from __future__ import annotations

import pytest
import redis

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker.errors import HostBusy, Retryable
from worker.fetch import Fetcher
from worker.fetch.hostlimit import LocalHostLimiter, RedisHostLimiter, reservation_margin


@pytest.fixture
def redis_client(redis_server: RedisServer) -> redis.Redis:
    """A client on an empty DB of the session's real Redis."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    return client


def test_redis_limiter_grants_once_per_interval_and_reserves_later_slots(redis_client: redis.Redis) -> None:
    limiter = RedisHostLimiter(redis_client)
    other = RedisHostLimiter(redis_client)  # another worker process: same Redis, same budget
    assert limiter.acquire("partner.example:443", 10.0) == 0.0
    first = other.acquire("partner.example:443", 10.0)
    second = limiter.acquire("partner.example:443", 10.0)
    step = 10.0 + reservation_margin(10.0)
    assert step - 0.2 < first <= step
    assert second == pytest.approx(first + step, abs=0.05)  # queued behind the first, not beside it
    assert limiter.acquire("other.example:443", 10.0) == 0.0  # hosts are independent
    assert limiter.acquire("partner.example:8443", 10.0) == 0.0  # so are ports


def test_zero_interval_is_never_limited(redis_client: redis.Redis) -> None:
    limiter = RedisHostLimiter(redis_client)
    assert [limiter.acquire("a:80", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a:80", 30.0) > 29.0  # the grants under 0 still count for a Crawl-delay


def test_redis_down_falls_back_to_the_process() -> None:
    limiter = RedisHostLimiter(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    assert limiter.acquire("a:80", 5.0) == 0.0
    assert limiter.acquire("a:80", 5.0) > 0.0


def test_local_limiter() -> None:
    limiter = LocalHostLimiter()
    assert limiter.acquire("a:80", 5.0) == 0.0
    wait = limiter.acquire("a:80", 5.0)
    assert 4.9 < wait <= 5.0 + reservation_margin(5.0)
    assert limiter.acquire("b:80", 5.0) == 0.0


def test_fetcher_raises_host_busy_before_sending(redis_client: redis.Redis, policy: FetchPolicy) -> None:
    busy_policy = policy.model_copy(update={"host_interval": 20.0, "robots": False})
    with HTTPTestServer() as server:
        with Fetcher(busy_policy, redis=redis_client) as one, Fetcher(busy_policy, redis=redis_client) as two:
            assert one.get(server.url("/gazette/news/")).status == 200
            with pytest.raises(HostBusy) as caught:
                two.get(server.url("/gazette/news/"))
        assert [r.path for r in server.requests] == ["/gazette/news/"]
        busy = caught.value
        assert isinstance(busy, Retryable) and 19 < (busy.retry_after or 0) <= 21
        assert server.host_port in str(busy)


def test_crawl_delay_sets_the_interval(redis_client: redis.Redis, policy: FetchPolicy) -> None:
    with HTTPTestServer() as server, Fetcher(policy, redis=redis_client) as fetcher:
        server.content("/robots.txt", b"User-agent: *\nCrawl-delay: 40\n", "text/plain")
        with pytest.raises(HostBusy) as caught:  # robots.txt took this host's turn
            fetcher.get(server.url("/gazette/news/"))
        assert fetcher.host_interval(server.url("/x")) == 40.0
        assert 39 < (caught.value.retry_after or 0) <= 41
        capped = Fetcher(policy.model_copy(update={"max_crawl_delay": 5.0}), redis=redis_client)
        assert capped.host_interval(server.url("/x")) == 5.0  # cached in Redis, capped by the policy


def test_patience_waits_instead_of_raising(policy: FetchPolicy) -> None:
    # For the CLI only: a short interval is waited out in the call.
    with HTTPTestServer() as server:
        with Fetcher(policy.model_copy(update={"host_interval": 0.3, "robots": False})) as fetcher:
            fetcher.get(server.url("/gazette/news/"))
            assert fetcher.get(server.url("/gazette/news/"), patience=2.0).status == 200
        assert len(server.requests) == 2


def test_same_host_redirects_within_one_fetch_are_not_rescheduled(policy: FetchPolicy) -> None:
    with HTTPTestServer() as server:
        server.redirect("/old", "/gazette/news/")
        with Fetcher(policy.model_copy(update={"host_interval": 30.0, "robots": False})) as fetcher:
            assert fetcher.get(server.url("/old")).final_url == server.url("/gazette/news/")
        assert [r.path for r in server.requests] == ["/old", "/gazette/news/"]
