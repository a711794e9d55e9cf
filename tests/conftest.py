"""Shared fixtures: real Redis and PostgreSQL servers for the whole session, databases per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import PostgresServer, PostgresUnavailable, RedisServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Real peers' fixtures: mastodon-mock (``mastodon``, ``mastodon_peer``, ``mastodon_limited_peer``).
pytest_plugins = ["tests.support.mastodon_peer"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the session."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL; in CI a server that cannot start fails the run instead of skipping."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        message = f"PostgreSQL could not start, so PostgreSQL tests cannot run: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip("*** " + message + " ***")
    yield server
    server.stop()


_db_counter = iter(range(1, 10_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'syndicate.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{next(_db_counter)}_{os.getpid()}")
