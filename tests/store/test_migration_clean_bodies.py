"""Migration 0005 cleans bodies stored before the normalizer removed controls and bidi overrides.

Feed renders trust stored bodies since then (``FeedItem.content_is_clean`` skips the scan), so an
old row with a C0/C1 control or a bidi override must be cleaned on upgrade: on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from worker.store.db import make_engine, upgrade

BODIES = {
    "https://a.example/dirty": ("<p>Trojan \u202esource\u202c and a bell\x07 and \x85 NEL</p>", True),
    "https://a.example/clean": ("<p>Ăla e curat — emoji 🇷🇴 and RLM \u200f kept</p>", False),
}


def test_upgrade_cleans_old_bodies_and_leaves_clean_ones(database_url: str) -> None:
    upgrade(database_url, "0004")
    engine = make_engine(database_url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (name, kind, url, created_at, crawl_count, error_count) "
                "VALUES ('cluj', 'push', 'https://a.example/', :now, 0, 0)"
            ),
            {"now": now},
        )
        for url, (body, _) in BODIES.items():
            conn.execute(
                text(
                    "INSERT INTO articles (source_id, url, canonical_url, status, authors, tags, attempts,"
                    " first_seen_at, last_seen_at, content_html) VALUES ((SELECT id FROM sources),"
                    " :url, :canonical, 'ready', '[]', '[]', 0, :now, :now, :body)"
                ),
                {"url": url, "canonical": url, "now": now, "body": body},
            )
    engine.dispose()

    upgrade(database_url)

    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored: dict[str, str] = dict(conn.execute(text("SELECT url, content_html FROM articles")).all())
    engine.dispose()
    assert stored["https://a.example/dirty"] == "<p>Trojan source and a bell and  NEL</p>"
    assert stored["https://a.example/clean"] == BODIES["https://a.example/clean"][0]
