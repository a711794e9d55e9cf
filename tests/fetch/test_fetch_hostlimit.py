"""The per-host limiter on a real Redis and in process; the Fetcher raises HostBusy before it sends."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
import requests

from config.model import FetchPolicy
from tests.support.httpserver import HTTPTestServer, Request, Response
from tests.support.services import RedisServer
from worker.errors import HostBusy, Retryable
from worker.fetch import Fetcher
from worker.fetch.hostlimit import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    KEY_PREFIX,
    HostLimiter,
    LocalHostLimiter,
    RedisHostLimiter,
    reservation_margin,
)
from worker.http import WatchedAdapter
from worker.redisclient import connect


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
    # The workers' own client (bounded retries): redis-py's default retries took over 5 s per
    # command in CI, so the fallback's second acquire came after the interval had passed.
    limiter = RedisHostLimiter(connect("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    assert limiter.acquire("a:80", 60.0) == 0.0
    assert limiter.acquire("a:80", 60.0) > 59.0
    assert limiter.acquire("b:80", 60.0) == 0.0


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


# --- turns: the interval counts from when a request is done with the host, not from its grant --------


Limiters = tuple[HostLimiter, HostLimiter]


@pytest.fixture(params=["redis", "local"])
def two_workers(request: pytest.FixtureRequest) -> Limiters:
    """Two workers' limiters: two Redis limiters on one real Redis, or one process's limiter twice."""
    if request.param == "local":
        local = LocalHostLimiter()
        return local, local
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisHostLimiter(client), RedisHostLimiter(client)


def test_a_held_turn_keeps_the_host_until_it_is_released(two_workers: Limiters) -> None:
    one, two = two_workers
    assert one.acquire("a:80", 0.3, hold=5.0, holder="one") == 0.0
    time.sleep(0.35)  # the request is still on its way (a TLS handshake, a cold first fetch)
    wait = two.acquire("a:80", 0.3, hold=5.0, holder="two")
    assert wait >= 0.3  # counting from the grant would have let it in now
    one.release("a:80", "one")
    released = time.monotonic()
    wait = two.acquire("a:80", 0.3, hold=5.0, holder="two")
    assert wait >= 0.29  # counted from the release (and behind its own earlier reservation)
    time.sleep(max(0.0, released + 0.35 - time.monotonic()))
    assert two.acquire("a:80", 0.3, hold=5.0, holder="two") == 0.0  # one interval after the release


def test_an_unreleased_turn_ends_with_its_hold(two_workers: Limiters) -> None:
    one, two = two_workers
    assert one.acquire("a:80", 0.1, hold=0.3, holder="killed") == 0.0  # its worker dies mid-request
    assert two.acquire("a:80", 0.1, hold=0.3, holder="two") > 0.0
    time.sleep(0.45)
    assert two.acquire("a:80", 0.1, hold=0.3, holder="two") == 0.0
    one.release("a:80", "killed")  # late: it moves the interval on but does not free two's turn
    assert one.acquire("a:80", 0.0, hold=0.3, holder="three") > 0.0


def test_a_caller_that_does_not_know_the_interval_gets_the_one_in_force(two_workers: Limiters) -> None:
    one, two = two_workers
    assert one.acquire("a:80", 2.0, hold=5.0, holder="one") == 0.0
    one.release("a:80", "one")
    # robots.txt asked for again (its cache expired): the default interval 0 is all this caller knows.
    assert two.acquire("a:80", 0.0, hold=5.0, known=False, holder="two") > 1.9
    # A caller that knows the host's interval (robots.txt now says 0) decides it.
    assert two.acquire("a:80", 0.0, hold=5.0, holder="two") == 0.0


class ColdStartAdapter(WatchedAdapter):
    """A real adapter whose first send starts late, as a worker's first fetch does (0.2-0.3 s here).

    A :class:`WatchedAdapter`, since the Fetcher's guarded requests need connections pinned to the
    addresses the SSRF guard checked.
    """

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Send, after the delay the first time."""
        delay, self.delay = self.delay, 0.0
        time.sleep(delay)
        return super().send(request, *args, **kwargs)


def _arrivals(server: HTTPTestServer, paths: dict[str, Response]) -> list[tuple[float, str]]:
    log: list[tuple[float, str]] = []
    for path, response in paths.items():

        def answer(request: Request, response: Response = response) -> Response:
            log.append((time.time(), request.path))
            return response

        server.route(path, answer)
    return log


def test_a_late_robots_request_does_not_let_the_next_one_in_early(
    redis_client: redis.Redis, policy: FetchPolicy
) -> None:
    """The root cause of the two-process Crawl-delay bug (issue 10), in one process.

    The robots.txt request was granted at t0 but reached the host 0.3 s later; the next request,
    granted 0.47 s after t0, reached it 0.17 s after robots.txt under a 0.4 s Crawl-delay.
    """
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", ColdStartAdapter(0.3))
    with HTTPTestServer() as server, Fetcher(policy, session=session, redis=redis_client) as fetcher:
        log = _arrivals(
            server,
            {
                "/robots.txt": Response(
                    200, b"User-agent: *\nCrawl-delay: 0.4\n", {"Content-Type": "text/plain"}
                ),
                "/story": Response(
                    200, b"<html><body><p>story</p></body></html>", {"Content-Type": "text/html"}
                ),
            },
        )
        busy = 0
        while True:
            try:
                fetcher.get(server.url("/story"))
                break
            except HostBusy as exc:  # as a rescheduled task would
                busy += 1
                time.sleep(exc.retry_after or 0.0)
    assert [path for _, path in log] == ["/robots.txt", "/story"]
    assert log[1][0] - log[0][0] >= 0.4 - 0.005, log  # counted from the grant: 0.03-0.17 s
    assert busy >= 1


def test_a_robots_refetch_keeps_the_crawl_delay_in_force(
    redis_client: redis.Redis, policy: FetchPolicy
) -> None:
    clock = [1_700_000_000.0]
    fetcher = Fetcher(policy.model_copy(update={"robots_ttl": 60.0}), redis=redis_client)
    fetcher.robots.clock = lambda: clock[0]
    with HTTPTestServer() as server, fetcher:
        server.content("/robots.txt", b"User-agent: *\nCrawl-delay: 30\n", "text/plain")
        with pytest.raises(HostBusy):
            fetcher.get(server.url("/gazette/news/"))  # robots.txt took the turn
        redis_client.delete(f"{KEY_PREFIX}{server.host_port}")  # as if the 30 s had passed
        assert fetcher.get(server.url("/gazette/news/")).status == 200
        clock[0] += 61  # robots.txt expired: asked for again, before anything says Crawl-delay is 30
        with pytest.raises(HostBusy) as caught:
            fetcher.get(server.url("/gazette/news/"))
        # Under the default interval (0) the new robots.txt request went out right after the page.
        assert [r.path for r in server.requests] == ["/robots.txt", "/gazette/news/"]
        assert 29 < (caught.value.retry_after or 0) <= 31


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_a_failing_host_gets_a_wider_interval_for_a_while(kind: str, redis_client: redis.Redis) -> None:
    limiter: HostLimiter = RedisHostLimiter(redis_client) if kind == "redis" else LocalHostLimiter()
    assert limiter.back_off("slow.example:80", 0.5) == BACKOFF_BASE
    assert limiter.back_off("slow.example:80", 0.5) == 2 * BACKOFF_BASE
    assert limiter.acquire("slow.example:80", 0.5) == 0.0
    wait = limiter.acquire("slow.example:80", 0.5)
    assert 2 * BACKOFF_BASE - 0.1 < wait <= 2 * BACKOFF_BASE + reservation_margin(2 * BACKOFF_BASE)
    assert max(limiter.back_off("slow.example:80", 0.5) for _ in range(6)) == BACKOFF_MAX
    assert limiter.acquire("fine.example:80", 0.5) == 0.0  # other hosts keep their interval
    assert limiter.acquire("fine.example:80", 0.5) <= 0.5 + reservation_margin(0.5)


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_waiters_of_a_long_held_host_come_back_later(kind: str, redis_client: redis.Redis) -> None:
    """A turn held for a while is likely a slow exchange: waiters do not ask again every interval."""
    limiter: HostLimiter = RedisHostLimiter(redis_client) if kind == "redis" else LocalHostLimiter()
    assert limiter.acquire("slow.example:80", 0.2, hold=30.0, holder="slow") == 0.0
    soon = limiter.acquire("slow.example:80", 0.2, holder="other")
    assert soon <= 0.2 + 2 * reservation_margin(0.2)  # just granted: maybe a quick exchange
    time.sleep(1.5)  # the turn has now been held for 1.5 s
    later = limiter.acquire("slow.example:80", 0.2, holder="other")
    assert later >= 1.4, later
    limiter.release("slow.example:80", "slow")
    time.sleep(0.25)
    assert limiter.acquire("slow.example:80", 0.2, holder="third") == 0.0  # released: the next one goes


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_the_first_caller_refused_is_promised_the_next_turn(kind: str, redis_client: redis.Redis) -> None:
    """A URL retrying after a timeout cannot take the turn a waiting URL of the same host was promised."""
    limiter: HostLimiter = RedisHostLimiter(redis_client) if kind == "redis" else LocalHostLimiter()
    assert limiter.acquire("h.example:80", 0.3, hold=10.0, holder="a", who="/slow") == 0.0
    assert limiter.acquire("h.example:80", 0.3, holder="b", who="/normal") > 0.0  # promised the next turn
    limiter.release("h.example:80", "a")
    time.sleep(0.4)  # the interval after the release has passed: the host is free
    assert limiter.acquire("h.example:80", 0.3, holder="c", who="/slow") > 0.0  # not its turn
    assert limiter.acquire("h.example:80", 0.3, holder="d", who="/normal") == 0.0
    time.sleep(0.4)
    assert limiter.acquire("h.example:80", 0.3, holder="e", who="/slow") == 0.0  # the promise was kept
