"""Fixtures for the fetch tests: the real local HTTP server and fetchers allowed to reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.model import FetchPolicy
from tests.support.httpserver import SITES, HTTPTestServer, Response
from worker.fetch import Fetcher

__all__ = ["SITES", "HTTPTestServer", "Response"]


@pytest.fixture
def http_server() -> Iterator[HTTPTestServer]:
    """A real HTTP server on 127.0.0.1 serving tests/fixtures/sites plus routes a test adds."""
    with HTTPTestServer() as server:
        yield server


@pytest.fixture
def policy() -> FetchPolicy:
    """A fetch policy that lets tests reach 127.0.0.1, with short limits."""
    return FetchPolicy(allow_hosts=["127.0.0.1"], timeout=2.0, max_bytes=1_000_000, max_redirects=3)


@pytest.fixture
def fetcher(policy: FetchPolicy) -> Iterator[Fetcher]:
    """A Fetcher under :func:`policy`."""
    with Fetcher(policy) as f:
        yield f
