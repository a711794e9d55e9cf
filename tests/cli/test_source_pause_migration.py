"""Migration 0004 (sources.paused_at, pause_reason) on SQLite and PostgreSQL: an existing database
upgrades with its rows kept, the schema then matches the models, and the downgrade drops the columns."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from tests.support.schema import schema_diff
from worker.store.db import alembic_config, get_sessionmaker, make_engine, upgrade
from worker.store.models import Source


def _source_columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("sources")}
    finally:
        engine.dispose()


def test_upgrade_from_0003_keeps_sources_and_adds_the_pause_columns(database_url: str) -> None:
    upgrade(database_url, "0003")
    assert "paused_at" not in _source_columns(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (name, kind, url, created_at, crawl_count, error_count) "
                "VALUES ('cluj', 'listing', 'https://cluj.example/', :now, 3, 1)"
            ),
            {"now": datetime(2026, 1, 2, tzinfo=UTC)},
        )
    engine.dispose()

    upgrade(database_url)
    assert {"paused_at", "pause_reason"} <= _source_columns(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = schema_diff(conn)
    engine.dispose()
    assert diff == []

    maker = get_sessionmaker(database_url)
    with maker() as session:
        source = session.query(Source).filter_by(name="cluj").one()
        assert source.crawl_count == 3 and source.paused_at is None and source.pause_reason is None
        source.paused_at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
        source.pause_reason = "site redesign, selectors broken"
        session.commit()
    with maker() as session:
        source = session.query(Source).filter_by(name="cluj").one()
        assert source.paused_at == datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
        assert source.pause_reason == "site redesign, selectors broken"
    maker.kw["bind"].dispose()

    command.downgrade(alembic_config(database_url), "0003")
    assert not {"paused_at", "pause_reason"} & _source_columns(database_url)
    upgrade(database_url)
    assert {"paused_at", "pause_reason"} <= _source_columns(database_url)
