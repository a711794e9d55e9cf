"""Worker and beat heartbeats on a real Redis: written with Redis's clock, read in one round trip, judged
alive or stale; the beat scheduler beats on its ticks and caps its sleep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.services import RedisServer
from worker import redisclient
from worker.ops import heartbeat
from worker.ops.heartbeat import BEAT_KEY, WORKERS_KEY, Verdict, beat, forget, is_alive, judge, liveness

REDIS_DB = 15  # other tests use 1-14


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """An emptied database of the session's real Redis."""
    c = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}")
    c.flushdb()
    yield c
    c.close()


def test_liveness_reports_each_worker_and_the_beat(client: redis.Redis) -> None:
    beat(client, WORKERS_KEY, "celery@a")
    beat(client, WORKERS_KEY, "celery@b")
    # A worker last seen 100 s ago, on Redis's clock.
    seconds, micros = client.time()
    client.hset(WORKERS_KEY, "celery@old", f"{seconds + micros / 1e6 - 100:.6f}")
    beat(client, BEAT_KEY, "beat@h")
    live = liveness(client)
    names = [w["name"] for w in live["workers"]]
    assert names == ["celery@a", "celery@b", "celery@old"]
    ages = {w["name"]: w["age_seconds"] for w in live["workers"]}
    assert ages["celery@a"] < 1 and ages["celery@b"] < 1
    assert 99 < ages["celery@old"] < 102
    assert live["beat"]["name"] == "beat@h" and live["beat"]["age_seconds"] < 1
    assert judge(live) == Verdict(worker="ok", beat="ok", live_workers=2)
    assert live["standby"] == []


def test_a_standby_beat_is_listed_apart_and_does_not_count_as_the_beat(client: redis.Redis) -> None:
    beat(client, heartbeat.STANDBY_KEY, "beat@standby")
    live = liveness(client)
    assert live["beat"] is None and [b["name"] for b in live["standby"]] == ["beat@standby"]
    assert judge(live).beat == "missing"  # only a beat that sends ticks makes the schedule run


def test_a_clean_shutdown_leaves_the_list_and_long_gone_entries_are_pruned(client: redis.Redis) -> None:
    seconds, _ = client.time()
    client.hset(WORKERS_KEY, "celery@retired", str(seconds - heartbeat.FORGET_AFTER - 10))
    beat(client, WORKERS_KEY, "celery@a")
    assert [w["name"] for w in liveness(client)["workers"]] == ["celery@a"]  # not shown
    assert client.hexists(WORKERS_KEY, "celery@retired")
    beat(client, WORKERS_KEY, "celery@a", prune=True)
    assert not client.hexists(WORKERS_KEY, "celery@retired")
    forget(client, WORKERS_KEY, "celery@a")
    assert liveness(client) == {"workers": [], "beat": None, "standby": []}


def test_judge_is_pure_and_says_missing_or_stale() -> None:
    assert is_alive(0.5) and is_alive(30.0) and not is_alive(30.1) and not is_alive(None)
    assert is_alive(50, threshold=60)
    assert judge({"workers": [], "beat": None}) == Verdict("missing", "missing", 0)
    stale = {"workers": [{"name": "w", "age_seconds": 31.0}], "beat": {"name": "b", "age_seconds": 99.0}}
    verdict = judge(stale)
    assert verdict == Verdict("stale", "stale", 0) and not verdict.ok
    mixed = {"workers": [{"name": "w", "age_seconds": 31.0}, {"name": "v", "age_seconds": 2.0}], "beat": None}
    assert judge(mixed) == Verdict("ok", "missing", 1)
    assert judge(stale, threshold=100).ok


def test_signal_handlers_beat_throttled_and_forget(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redisclient, "_bookkeeping", client)
    monkeypatch.setattr(heartbeat, "_last_beat", {})

    class Consumer:
        hostname = "celery@node1"

    heartbeat.on_worker_ready(sender=Consumer())
    first = float(client.hget(WORKERS_KEY, "celery@node1") or 0)
    assert first > 0

    class Heart:
        class eventer:
            hostname = "celery@node1"

    heartbeat.on_heartbeat_sent(sender=Heart())  # within INTERVAL of the last write: no write
    assert float(client.hget(WORKERS_KEY, "celery@node1") or 0) == first
    heartbeat.on_worker_shutdown(sender=Consumer())
    assert not client.hexists(WORKERS_KEY, "celery@node1")


def test_heartbeat_write_failure_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.services import free_port

    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(redisclient, "_bookkeeping", dead)
    monkeypatch.setattr(heartbeat, "_last_beat", {})
    heartbeat.beat_safely(WORKERS_KEY, "celery@x", force=True)  # logged, not raised
    heartbeat.on_worker_shutdown(sender=None)


def test_beat_scheduler_beats_on_tick_and_caps_its_sleep(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from celery import Celery

    monkeypatch.setattr(redisclient, "_bookkeeping", client)
    monkeypatch.setattr(heartbeat, "_last_beat", {})
    app = Celery(
        "hb-test", broker=f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/{REDIS_DB}"
    )
    app.conf.beat_schedule = {"rare": {"task": "x.never", "schedule": 3600.0}}
    scheduler = heartbeat.HeartbeatScheduler(app, schedule_filename=str(tmp_path / "beat-state"), lazy=False)
    try:
        assert client.hexists(BEAT_KEY, heartbeat.beat_name())  # setup_schedule beat at once
        client.delete(BEAT_KEY)
        monkeypatch.setattr(heartbeat, "_last_beat", {})
        sleep = scheduler.tick()
        assert sleep <= heartbeat.INTERVAL  # the hourly entry alone would sleep far longer
        live = liveness(client)
        assert live["beat"] is not None and live["beat"]["age_seconds"] < 1
    finally:
        scheduler.close()
    assert liveness(client)["beat"] is None  # a beat stopped on purpose leaves
