"""The beat leader lock on a real redis-server: one leader, a standby that takes over, flush and loss.

The same lock is exercised with real ``syndicate beat`` processes in
``tests/integration/test_scale_out.py``; here the TTL is short so that take-over is timed in seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import RedisServer
from worker.ops.beatlock import LEADER_KEY, BeatLeader

TTL = 0.6


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the session's Redis with the lock key cleared."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.delete(LEADER_KEY)
    yield conn
    conn.delete(LEADER_KEY)


def test_one_leader_and_a_standby_that_takes_over_when_it_stops(client: redis.Redis) -> None:
    first, second = BeatLeader(client, ttl=TTL), BeatLeader(client, ttl=TTL)
    assert first.claim()
    assert not second.claim()
    assert first.holder() == first.token
    first.keep()
    time.sleep(TTL * 2)  # renewed: still the leader after two TTLs
    assert not second.claim()

    took_over: list[float] = []

    def stand_by() -> None:
        second.wait(poll=0.05)
        took_over.append(time.monotonic())

    waiter = threading.Thread(target=stand_by)
    waiter.start()
    stopped = time.monotonic()
    first.release()
    waiter.join(5)
    assert took_over and took_over[0] - stopped < 1.0
    assert second.holder() == second.token


def test_a_killed_leader_is_replaced_within_one_ttl(client: redis.Redis) -> None:
    dead, standby = BeatLeader(client, ttl=TTL), BeatLeader(client, ttl=TTL)
    assert dead.claim()  # and never renews: the process died
    started = time.monotonic()
    standby.wait(poll=0.05)
    assert TTL * 0.5 < time.monotonic() - started < TTL + 1.0
    assert standby.holder() == standby.token


def test_flushed_redis_is_reclaimed_by_the_leader_and_a_usurper_stops_it(client: redis.Redis) -> None:
    leader, other = BeatLeader(client, ttl=TTL), BeatLeader(client, ttl=TTL)
    assert leader.claim()
    client.flushdb()
    assert leader.claim()  # the next renewal takes the key again
    assert not other.claim()

    lost = threading.Event()
    client.set(LEADER_KEY, other.token, px=int(TTL * 1000))  # someone else holds it now
    leader.keep(on_lost=lost.set)
    assert lost.wait(TTL * 2)
