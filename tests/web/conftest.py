"""Fixtures for the HTTP app tests: the real FastAPI app over a Runtime on SQLite and PostgreSQL.

``TestClient`` drives the real ASGI app in process. Ingest enqueues go to the real Redis of the
``redis_server`` fixture: see :func:`broker` for how the Celery app is pointed at it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from config.model import parse_config
from config.settings import Settings
from tests.support.services import RedisServer
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade
from worker.web.app import create_web_app

TOKEN = "web-test-token"
REDIS_DB = 9  # other tests use 1, 2 (end-to-end) and 3 (worker killed)
PUBLIC_URL = "http://feeds.example.test"


def web_config(**overrides: Any) -> dict[str, Any]:
    """The config the web tests run with; ``api.token`` comes from ``${WEB_API_TOKEN}``.

    The status is public here so tests of its content need no header; tests/web/test_web_status_access.py
    tests the default (behind the token).
    """
    config: dict[str, Any] = {
        "api": {"token": "${WEB_API_TOKEN}", "public_status": True},
        "fetch": {"allow_hosts": ["127.0.0.1"]},
        "sources": [
            {"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/", "category": "News"}
        ],
        "feeds": [
            {"name": "all", "title": "All partner news"},
            {"name": "it", "title": "IT Systems", "categories": ["IT Systems"]},
        ],
        "endpoints": [{"name": "archive", "kind": "file", "path": "shares.jsonl", "story_window": 0}],
    }
    config.update(overrides)
    return config


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis database of the session's real server, emptied for this test."""
    url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def make_runtime(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Build a Runtime on the migrated test database: ``make_runtime(config, redis_url=...)``."""
    upgrade(database_url)

    def make(
        config: dict[str, Any] | None = None,
        *,
        redis_url: str = "redis://127.0.0.1:1/0",
        env: dict[str, str] | None = None,
    ) -> Runtime:
        settings = Settings(
            database_url=database_url, redis_url=redis_url, var_dir=tmp_path / "var", public_url=PUBLIC_URL
        )
        lookup = {"WEB_API_TOKEN": TOKEN, **(env or {})}.get
        return Runtime(
            settings=settings, config=parse_config(config or web_config(), lookup=lookup), base_dir=tmp_path
        )

    yield make
    get_engine(database_url).dispose()


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime], redis_url: str) -> Runtime:
    """The default web runtime, with the real Redis."""
    return make_runtime(redis_url=redis_url)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The real app over :func:`runtime`; server errors come back as 500 responses, not exceptions."""
    with TestClient(create_web_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """Point the process-wide Celery app (which ``POST /api/articles`` enqueues on) at the real Redis.

    ``worker.app.app`` is built at import from ``REDIS_URL``, and another test may have imported it
    (and opened its connection pools) already, so setting the environment is not enough. Instead the
    app's ``broker_url`` is patched and its lazily created connection and producer pools are reset,
    so the next ``.delay()`` connects to this URL; monkeypatch puts all three back afterwards. (The
    pools themselves live in kombu's process-wide registry, keyed by URL, and are reused, not closed.)
    Yields a client of the same Redis database for inspecting the queues.
    """
    from worker import redisclient
    from worker.app import app as celery_app

    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    client = redis.Redis.from_url(redis_url)
    # The publish signal's work markers go to the same Redis, not to whatever the settings named
    # when the first test published: a dead URL there cost every .delay() its retries.
    monkeypatch.setattr(redisclient, "_bookkeeping", client)
    yield client
    client.close()


def queued_messages(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting in ``queue`` (kombu's Redis list), decoded: task name and args."""
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        out.append({"task": message["headers"]["task"], "args": body[0], "kwargs": body[1]})
    return out


@pytest.fixture
def auth() -> dict[str, str]:
    """The Authorization header the default runtime accepts."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config_factory() -> Callable[..., dict[str, Any]]:
    """:func:`web_config`, as a fixture."""
    return web_config


@pytest.fixture
def queued() -> Callable[[redis.Redis, str], list[dict[str, Any]]]:
    """:func:`queued_messages`, as a fixture (test modules cannot import this conftest)."""
    return queued_messages
