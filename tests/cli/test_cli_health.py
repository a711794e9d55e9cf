"""`syndicate health worker|beat|web`, the containers' healthcheck, against real processes.

A real redis-server, a real `syndicate worker`, `beat` and `web` on SQLite: each check fails before its
part runs, passes once it does (the worker and beat through their Redis heartbeats, web through
``/healthz?scope=web``), and the worker's fails again after it stopped (a clean stop removes its beat).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.httpserver import wait_until
from tests.support.services import RedisServer, Syndicate, free_port
from worker.ops.heartbeat import STANDBY_KEY, beat_name


@pytest.fixture
def syn(tmp_path: Path) -> Iterator[Syndicate]:
    """One push source and a feed; its own Redis, so no other test's heartbeats count."""
    redis_server = RedisServer().start()
    (tmp_path / "syndicate.yaml").write_text(
        "sources:\n  - {name: partners, kind: push}\nfeeds:\n  - {name: all, title: All}\n", encoding="utf-8"
    )
    s = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_server.url,
            "SYNDICATE_HTTP_HOST": "0.0.0.0",
            "SYNDICATE_HTTP_PORT": str(free_port()),
        },
    )
    assert s.run("migrate").returncode == 0
    yield s
    s.stop()
    redis_server.stop()


def _ok(syn: Syndicate, part: str) -> bool:
    result = syn.run("health", part, "--timeout", "2", timeout=30)
    assert result.returncode in (0, 1), (result.returncode, result.stderr)
    return result.returncode == 0


def test_health_follows_each_part(syn: Syndicate) -> None:
    assert not _ok(syn, "worker")
    assert not _ok(syn, "beat")
    web_down = syn.run("health", "web", "--timeout", "2")
    assert web_down.returncode == 1 and "not answering" in web_down.stderr

    worker = syn.start("worker", "worker", "--concurrency", "1")
    syn.start("beat", "beat")
    syn.start("web", "web")
    assert wait_until(lambda: _ok(syn, "worker"), timeout=60), syn.logs()
    assert wait_until(lambda: _ok(syn, "beat"), timeout=60), syn.logs()
    assert wait_until(lambda: _ok(syn, "web"), timeout=60), syn.logs()
    web_up = syn.run("health", "web")
    assert '"status":"ok"' in web_up.stdout.replace(" ", ""), web_up.stdout

    worker.terminate()  # a clean stop: the worker removes its heartbeat
    worker.wait(30)
    assert wait_until(lambda: not _ok(syn, "worker"), timeout=30), syn.logs()
    assert _ok(syn, "beat") and _ok(syn, "web")


def test_a_standby_beat_is_seen_and_leaves_the_list_when_it_leads_or_stops(syn: Syndicate) -> None:
    """Two beats: the second stands by (its own heartbeat, in status and health), takes over when the
    leader stops and then is no longer listed as standing by; a standby stopped on purpose is removed,
    not left to turn stale."""
    client = redis.Redis.from_url(syn.env["REDIS_URL"])

    def standby() -> list[str]:
        return sorted(
            name.decode() if isinstance(name, bytes) else name for name in client.hkeys(STANDBY_KEY)
        )

    first = syn.start("beat-1", "beat")
    assert wait_until(lambda: _ok(syn, "beat"), timeout=60), syn.logs()
    assert standby() == []
    syn.start("beat-2", "beat")
    assert wait_until(lambda: standby() == [beat_name()], timeout=60), syn.logs()
    status = syn.run("status")
    assert status.returncode == 0, status.stderr
    assert f"standby: {beat_name()}" in status.stdout, status.stdout
    health = syn.run("health", "beat")
    assert health.returncode == 0 and "ok" in health.stdout, health.stdout

    first.terminate()  # the leader releases its lock; the standby leads within one poll
    first.wait(30)
    assert wait_until(lambda: standby() == [], timeout=30), syn.logs()
    assert wait_until(lambda: _ok(syn, "beat"), timeout=30), syn.logs()
    assert "beat leader lock" in (syn.cwd / "beat-2.log").read_text(encoding="utf-8", errors="replace")

    third = syn.start("beat-3", "beat")
    assert wait_until(lambda: standby() == [beat_name()], timeout=60), syn.logs()
    third.terminate()
    assert third.wait(30) is not None
    assert standby() == [], syn.logs()
