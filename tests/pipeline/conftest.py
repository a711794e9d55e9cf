"""Fixtures for the pipeline-stage tests: a real fixture site, a migrated database and a Runtime.

Everything is real: pages come from :class:`HTTPTestServer` on 127.0.0.1, the database is the
``database_url`` fixture (SQLite and PostgreSQL), webhooks go to a real HTTP receiver. No Celery:
the tests call the plain stage functions the tasks call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.model import parse_config
from config.settings import Settings
from tests.support.httpserver import HTTPTestServer
from worker.crawl import crawl_source, sync_sources
from worker.process import ProcessOutcome, process_article
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade
from worker.store.models import Article, FeedRender, Share, Source

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "pipeline" / "site"
PUBLIC_URL = "http://feeds.example.test"


@pytest.fixture
def site() -> Iterator[HTTPTestServer]:
    """The pipeline fixture site (tests/fixtures/pipeline/site) on 127.0.0.1, plus test routes."""
    with HTTPTestServer(root=SITE) as server:
        yield server


def base_config(site: HTTPTestServer) -> dict[str, Any]:
    """A config with two sources on the fixture site, fetch allowed only to the site's host:port."""
    return {
        "fetch": {"allow_hosts": [site.host_port], "timeout": "5s", "max_bytes": 200_000},
        "sources": [
            {
                "name": "valley",
                "kind": "listing",
                "url": site.url("/news/"),
                "options": {"link_selector": "a.post-link"},
            },
            {"name": "harbour", "kind": "page", "url": site.url("/other/harbour-report.html")},
        ],
        "feeds": [{"name": "all", "title": "All partner news"}],
        "endpoints": [],
    }


class Pipe:
    """A Runtime on a fresh database plus small helpers to run stages and read rows back."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def source_id(self, name: str) -> int:
        """Sync the sources table from the config and return the id of ``name``."""
        with self.rt.session() as session:
            return sync_sources(session, self.rt.config)[name]

    def source(self, name: str) -> Source:
        """The source row called ``name``."""
        with self.rt.session() as session:
            row = session.scalar(select(Source).where(Source.name == name))
            assert row is not None, name
            return row

    def crawl(self, name: str) -> list[int]:
        """Run the crawl stage for the source ``name``."""
        return crawl_source(self.rt, self.source_id(name))

    def process(self, ids: list[int]) -> list[ProcessOutcome]:
        """Run the process stage for each id (errors propagate)."""
        return [process_article(self.rt, article_id) for article_id in ids]

    def crawl_and_process(self, *names: str) -> list[int]:
        """Crawl each source and process what it found; the processed ids."""
        ids = [article_id for name in names for article_id in self.crawl(name)]
        self.process(ids)
        return ids

    def article(self, key: int | str) -> Article:
        """One article by id or by URL (url or canonical URL)."""
        with self.rt.session() as session:
            if isinstance(key, int):
                row = session.get(Article, key)
            else:
                row = session.scalar(
                    select(Article).where((Article.url == key) | (Article.canonical_url == key))
                )
            assert row is not None, key
            return row

    def articles(self) -> dict[str, Article]:
        """Every article, by its URL."""
        with self.rt.session() as session:
            return {a.url: a for a in session.scalars(select(Article).order_by(Article.id))}

    def shares(self) -> list[Share]:
        """Every share row, in id order."""
        with self.rt.session() as session:
            return list(session.scalars(select(Share).order_by(Share.id)))

    def renders(self, feed: str) -> dict[str, FeedRender]:
        """The stored renders of ``feed`` by format."""
        with self.rt.session() as session:
            return {
                r.format: r for r in session.scalars(select(FeedRender).where(FeedRender.feed_name == feed))
            }


@pytest.fixture
def make_pipe(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Pipe]]:
    """Build a :class:`Pipe` for a config dict (``${VAR}`` looked up in ``env``) on the migrated database."""
    upgrade(database_url)

    def make(config: dict[str, Any], env: dict[str, str] | None = None) -> Pipe:
        settings = Settings(
            database_url=database_url,
            redis_url="redis://127.0.0.1:1/0",  # never used by the stages
            var_dir=tmp_path / "var",
            public_url=PUBLIC_URL,
        )
        return Pipe(
            Runtime(settings=settings, config=parse_config(config, lookup=(env or {}).get), base_dir=tmp_path)
        )

    yield make
    get_engine(database_url).dispose()


@pytest.fixture
def site_config(site: HTTPTestServer) -> dict[str, Any]:
    """A fresh copy of :func:`base_config` for the running site, for a test to extend."""
    return base_config(site)


@pytest.fixture
def pipe(site: HTTPTestServer, make_pipe: Callable[..., Pipe]) -> Pipe:
    """A Pipe with :func:`base_config`."""
    return make_pipe(base_config(site))


class WebhookReceiver:
    """A real webhook receiver on 127.0.0.1: answers each POST with the next scripted status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = owner.statuses.pop(0) if owner.statuses else 200
                answer = json.dumps(
                    {"id": f"remote-{len(owner.received)}"} if status < 300 else {"error": "busy"}
                )
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/syndicate"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running :class:`WebhookReceiver`; set ``statuses`` to script its answers."""
    with WebhookReceiver([]) as receiver:
        yield receiver
