"""Send slots (worker/sendslots.py) on a real Redis: slow endpoints share all slots of a node but one,
endpoints not known to be slow are never held back, a dead process's slot is given back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import RedisServer
from worker import sendslots


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/11")
    conn.flushdb()
    sendslots.configure("w1@host", 3)
    yield conn
    sendslots.configure(None, 0)
    conn.flushdb()


def slow(client: redis.Redis, endpoint: str) -> None:
    """``endpoint``'s last send took longer than SLOW_AFTER."""
    client.set(sendslots.SECONDS_PREFIX + endpoint, f"{sendslots.SLOW_AFTER + 3:.3f}")


def test_slow_endpoints_hold_all_slots_but_one(client: redis.Redis) -> None:
    slow(client, "hook")
    slow(client, "slack")
    first = sendslots.acquire(client, "hook")
    second = sendslots.acquire(client, "slack")
    assert first.wait == 0 and second.wait == 0  # 2 of 3 slots
    refused = sendslots.acquire(client, "hook")
    assert refused.wait > 0 and sendslots.acquire(client, "slack").wait > 0
    # About the slow endpoint's last send time before it is tried again.
    assert sendslots.MIN_WAIT <= refused.wait <= (sendslots.SLOW_AFTER + 3) * 1.2
    # The last slot serves the others: a fast endpoint, and one never sent to yet.
    client.set(sendslots.SECONDS_PREFIX + "file", "0.010")
    fast = sendslots.acquire(client, "file")
    new = sendslots.acquire(client, "mastodon")
    assert fast.wait == 0 and new.wait == 0
    for slot in (fast, new):
        slot.sending()
        sendslots.release(slot)
    assert float(client.get(sendslots.SECONDS_PREFIX + "file") or 0) < sendslots.SLOW_AFTER
    # A slot given back without a send (the share was sent meanwhile) says nothing about the partner.
    with sendslots.acquire(client, "bluesky") as idle:
        assert idle.wait == 0 and idle.member
    assert client.get(sendslots.SECONDS_PREFIX + "bluesky") is None
    # A slow send ends: its slot goes to the next slow send.
    with first:
        first.sending()
    assert sendslots.acquire(client, "slack").wait == 0


def test_a_send_in_flight_long_makes_its_endpoint_slow_before_it_ends(client: redis.Redis) -> None:
    held = [sendslots.acquire(client, "hook") for _ in range(2)]  # never measured: not held back
    assert all(slot.wait == 0 for slot in held)
    # Both have been waiting on the partner longer than SLOW_AFTER: the endpoint is slow now.
    for slot in held:
        client.zadd(slot.key, {slot.member: time.time() - sendslots.SLOW_AFTER - 1})
    assert sendslots.acquire(client, "hook").wait > 0
    assert sendslots.acquire(client, "file").wait == 0


def test_a_dead_process_gives_its_slot_back(client: redis.Redis) -> None:
    slow(client, "hook")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(gone.stdout)
    key = sendslots.PREFIX + "w1@host"
    client.zadd(key, {f"hook|{pid}|a": time.time(), f"hook|{pid}|b": time.time()})
    assert sendslots.acquire(client, "hook").wait == 0  # the killed child's two sends are not held


def test_a_node_of_one_slot_or_no_node_holds_nothing_back(client: redis.Redis) -> None:
    slow(client, "hook")
    sendslots.configure("w1@host", 1)
    assert all(sendslots.acquire(client, "hook").wait == 0 for _ in range(3))
    sendslots.configure(None, 0)  # the CLI sending inline
    assert all(sendslots.acquire(client, "hook").wait == 0 for _ in range(3))
    assert client.keys(sendslots.PREFIX + "*") == []
