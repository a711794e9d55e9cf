"""article_terms (migration 0007) on SQLite and PostgreSQL: stored articles' categories and tags are
indexed by the upgrade, kept in step by every later edit, and the feeds' sort index exists."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import JSON, column, inspect, select, table, text

from worker.store.db import alembic_config, get_sessionmaker, make_engine, upgrade
from worker.store.models import Article, ArticleTerm, Source, term_keys


def _terms(url: str) -> dict[int, set[tuple[str, str]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT article_id, kind, term FROM article_terms")).all()
    finally:
        engine.dispose()
    out: dict[int, set[tuple[str, str]]] = {}
    for article_id, kind, term in rows:
        out.setdefault(article_id, set()).add((kind, term))
    return out


def _index_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'articles'"
            else:
                query = "SELECT indexname FROM pg_indexes WHERE tablename = 'articles'"
            return {name for (name,) in conn.execute(text(query))}
    finally:
        engine.dispose()


def test_upgrade_indexes_the_stored_articles_terms(database_url: str) -> None:
    upgrade(database_url, "0006")
    engine = make_engine(database_url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    stored = [("IT Systems", ["Cluj", "cluj", "Straße"]), (None, []), ("Energy", None)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (name, kind, url, created_at, crawl_count, error_count) "
                "VALUES ('cluj', 'listing', 'https://cluj.example/', :now, 0, 0)"
            ),
            {"now": now},
        )
        articles = table(
            "articles",
            *(column(name) for name in ("source_id", "url", "canonical_url", "status", "category")),
            *(column(name) for name in ("attempts", "first_seen_at", "last_seen_at", "backfill")),
            column("tags", JSON),
            column("authors", JSON),
        )
        for n, (category, tags) in enumerate(stored):
            url = f"https://cluj.example/{n}"
            conn.execute(
                articles.insert().values(
                    source_id=1,
                    url=url,
                    canonical_url=url,
                    status="ready",
                    category=category,
                    tags=tags,
                    authors=[],
                    attempts=0,
                    first_seen_at=now,
                    last_seen_at=now,
                    backfill=False,
                )
            )
    engine.dispose()
    assert "ix_articles_dated" not in _index_names(database_url)

    upgrade(database_url)
    assert "ix_articles_dated" in _index_names(database_url)
    assert _terms(database_url) == {
        1: {("category", "it systems"), ("tag", "cluj"), ("tag", "strasse")},
        3: {("category", "energy")},
    }

    command.downgrade(alembic_config(database_url), "0006")
    engine = make_engine(database_url)
    try:
        assert "article_terms" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert "ix_articles_dated" not in _index_names(database_url)


def test_terms_follow_every_edit_and_go_with_the_article(database_url: str) -> None:
    upgrade(database_url)
    maker = get_sessionmaker(database_url)
    with maker() as session:
        source = Source(name="s", kind="listing", url="https://x.example/")
        new = Article(
            source=source,
            url="https://x.example/a",
            canonical_url="https://x.example/a",
            category="News",
            tags=["Cluj", "AI"],
        )
        session.add(new)
        session.commit()
        article_id = new.id
    assert _terms(database_url) == {article_id: {("category", "news"), ("tag", "cluj"), ("tag", "ai")}}

    with maker() as session:  # an edit keeps one term, drops one, adds one, changes the category
        article = session.get(Article, article_id)
        assert article is not None
        article.tags = ["ai", "Rawabi"]
        article.category = "Tech"
        session.commit()
    assert _terms(database_url) == {article_id: {("category", "tech"), ("tag", "ai"), ("tag", "rawabi")}}

    with maker() as session:  # set to the same values (the worker re-applies every field): no change
        article = session.get(Article, article_id)
        assert article is not None
        article.category, article.tags = "TECH", ["AI", "rawabi"]
        session.commit()
        held = session.scalars(select(ArticleTerm).where(ArticleTerm.article_id == article_id)).all()
        assert {(t.kind, t.term) for t in held} == term_keys("TECH", ["AI", "rawabi"])

    with maker() as session:
        article = session.get(Article, article_id)
        assert article is not None
        article.category, article.tags = None, []
        session.commit()
    assert _terms(database_url) == {}

    with maker() as session:
        article = session.get(Article, article_id)
        assert article is not None
        article.tags = ["again"]
        session.commit()
        session.delete(article)
        session.commit()
    assert _terms(database_url) == {}
    maker.kw["bind"].dispose()


def test_term_keys_fold_case_and_cut_long_terms() -> None:
    assert term_keys("ÉNERGIE", ["Straße", "", "x" * 300]) == {
        ("category", "énergie"),
        ("tag", "strasse"),
        ("tag", "x" * 255),
    }
