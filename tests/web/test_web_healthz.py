"""GET /healthz reports worker and beat liveness from their heartbeats in the real Redis: "starting" in the
start-up grace, ok when both beat, 503 "degraded" when no worker beats or beat's heartbeat is stale."""

from __future__ import annotations

import time

import redis
from fastapi.testclient import TestClient

from worker.ops.heartbeat import BEAT_KEY, STALE_AFTER, STARTUP_GRACE, WORKERS_KEY, beat
from worker.runtime import Runtime
from worker.web.app import create_web_app


def _age(client: redis.Redis, key: str, name: str, seconds_ago: float) -> None:
    now, micros = client.time()
    client.hset(key, name, f"{now + micros / 1e6 - seconds_ago:.6f}")


def test_starting_within_the_grace_then_missing_is_degraded(runtime: Runtime, redis_url: str) -> None:
    app = create_web_app(runtime)
    with TestClient(app) as client:
        resp = client.get("/healthz")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["status"], body["worker"], body["beat"]) == ("ok", "starting", "starting")
        assert body["database"] == "ok" and body["redis"] == "ok"
        app.state.started -= STARTUP_GRACE + 1  # the web process has run past the grace
        resp = client.get("/healthz")
        assert resp.status_code == 503
        body = resp.json()
        assert (body["status"], body["worker"], body["beat"]) == ("degraded", "missing", "missing")


def test_ok_with_a_live_worker_and_beat_degraded_when_beat_is_stale(runtime: Runtime, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    beat(r, WORKERS_KEY, "celery@one")
    _age(r, WORKERS_KEY, "celery@gone", 500)
    beat(r, BEAT_KEY, "beat@host")
    app = create_web_app(runtime)
    app.state.started -= STARTUP_GRACE + 1
    with TestClient(app) as client:
        resp = client.get("/healthz")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["worker"], body["beat"]) == ("ok", "ok")
        assert [w["name"] for w in body["liveness"]["workers"]] == ["celery@gone", "celery@one"]
        _age(r, BEAT_KEY, "beat@host", STALE_AFTER + 15)
        resp = client.get("/healthz")
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == "degraded" and body["worker"] == "ok"
        assert body["beat"].startswith("stale: last heartbeat 4")  # 45 s ago
        # Only stale workers: degraded, even inside the start-up grace (they were seen, then stopped).
        _age(r, WORKERS_KEY, "celery@one", STALE_AFTER + 1)
        beat(r, BEAT_KEY, "beat@host")
        app.state.started = time.monotonic()
        body = client.get("/healthz").json()
        assert body["status"] == "degraded" and body["worker"].startswith("stale")
    r.close()


def test_scope_web_ignores_the_heartbeats_but_reports_them(runtime: Runtime, redis_url: str) -> None:
    app = create_web_app(runtime)
    app.state.started -= STARTUP_GRACE + 1
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 503  # no worker, no beat
        resp = client.get("/healthz", params={"scope": "web"})
        assert resp.status_code == 200, resp.text
        assert (resp.json()["status"], resp.json()["worker"]) == ("ok", "missing")
        assert client.get("/healthz", params={"scope": "nope"}).status_code == 422
