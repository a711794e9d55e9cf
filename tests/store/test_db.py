"""Storage: migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from tests.support.schema import schema_diff
from worker.store.db import get_sessionmaker, make_engine, upgrade
from worker.store.models import Article, Share, Source


def test_migrations_match_models(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert schema_diff(conn) == []
    assert {"sources", "articles", "feed_renders", "shares", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_unique_canonical_url_and_one_share_per_endpoint(database_url: str) -> None:
    upgrade(database_url)
    maker = get_sessionmaker(database_url)
    with maker() as session:
        source = Source(name="s", kind="listing", url="https://x.example/")
        session.add(source)
        session.flush()
        article = Article(source_id=source.id, url="https://x.example/a", canonical_url="https://x.example/a")
        session.add(article)
        session.commit()
        session.add(
            Article(source_id=source.id, url="https://x.example/a?x", canonical_url="https://x.example/a")
        )
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Share(article_id=article.id, endpoint="hook"))
        session.commit()
        session.add(Share(article_id=article.id, endpoint="hook"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        stored = session.scalar(select(Article).where(Article.id == article.id))
        assert stored is not None and stored.first_seen_at.tzinfo is not None
