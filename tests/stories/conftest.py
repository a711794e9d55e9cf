"""Fixtures for the story store tests: a migrated database (SQLite and PostgreSQL), a Runtime, and the
dev set's articles stored as ready rows of their own sources."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.model import parse_config
from config.settings import Settings
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade
from worker.store.models import Article, Source, Story

DEV = Path(__file__).resolve().parents[1] / "fixtures" / "stories"
DEV_ARTICLES = {
    a["id"]: a
    for a in (json.loads(line) for line in (DEV / "articles.jsonl").read_text().splitlines() if line.strip())
}


class StoryDB:
    """A Runtime on a fresh migrated database, and helpers to store and read articles and stories."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._sources: dict[str, int] = {}

    def source_id(self, name: str) -> int:
        if name not in self._sources:
            with self.rt.session() as session:
                row = session.scalar(select(Source).where(Source.name == name))
                if row is None:
                    row = Source(name=name, kind="page", url=f"https://{name}.example/")
                    session.add(row)
                    session.flush()
                self._sources[name] = row.id
        return self._sources[name]

    def add(self, dev_id: str, *, source: str | None = None, status: str = "ready", **fields: Any) -> int:
        """Store the dev-set article ``dev_id`` as a row (``fields`` override columns); its id."""
        found = DEV_ARTICLES[dev_id]
        published = datetime.fromisoformat(found["published"]).astimezone(UTC)
        values: dict[str, Any] = {
            "url": found["url"],
            "canonical_url": found["url"],
            "title": found["title"],
            "text": found["content_text"],
            "language": found["language"],
            "published": published,
            "first_seen_at": published,
            "changed_at": published,
            "status": status,
        }
        values.update(fields)
        with self.rt.session() as session:
            row = Article(source_id=self.source_id(source or found["source"]), **values)
            session.add(row)
            session.flush()
            return row.id

    def article(self, article_id: int) -> Article:
        with self.rt.session() as session:
            row = session.get(Article, article_id)
            assert row is not None
            return row

    def story_of(self, article_id: int) -> int | None:
        return self.article(article_id).story_id

    def story(self, story_id: int) -> Story | None:
        with self.rt.session() as session:
            return session.get(Story, story_id)

    def stories(self) -> dict[int, list[tuple[int, str | None]]]:
        """Every story's (article id, role), by story id."""
        found: dict[int, list[tuple[int, str | None]]] = {}
        with self.rt.session() as session:
            for row in session.scalars(
                select(Article).where(Article.story_id.is_not(None)).order_by(Article.id)
            ):
                assert row.story_id is not None
                found.setdefault(row.story_id, []).append((row.id, row.story_role))
        return found


def story_config(**stories: Any) -> dict[str, Any]:
    """A config whose sources are the dev set's (the hub's own ``clujit-cluster`` first by priority)."""
    names = sorted({a["source"] for a in DEV_ARTICLES.values()})
    return {
        "sources": [
            {
                "name": n,
                "kind": "page",
                "url": f"https://{n}.example/",
                "priority": 10 if n == "clujit-cluster" else 0,
            }
            for n in names
        ],
        "feeds": [{"name": "all", "title": "All partner news"}],
        "endpoints": [],
        "stories": stories,
    }


@pytest.fixture
def make_story_db(database_url: str, tmp_path: Path) -> Iterator[Callable[..., StoryDB]]:
    """Build a :class:`StoryDB` for a config dict (default :func:`story_config`) on the migrated database."""
    upgrade(database_url)

    def make(config: dict[str, Any] | None = None) -> StoryDB:
        settings = Settings(
            database_url=database_url,
            redis_url="redis://127.0.0.1:1/0",  # the story step needs no Redis
            var_dir=tmp_path / "var",
            public_url="http://feeds.example.test",
        )
        return StoryDB(
            Runtime(settings=settings, config=parse_config(config or story_config()), base_dir=tmp_path)
        )

    yield make
    get_engine(database_url).dispose()


@pytest.fixture
def story_db(make_story_db: Callable[..., StoryDB]) -> StoryDB:
    return make_story_db()
