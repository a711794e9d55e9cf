"""The event lines of `syndicate up` (worker/cli/activity.py) from a real database, changed as workers do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from config import load_config
from worker.cli.activity import ActivityWatch
from worker.store.db import get_sessionmaker, upgrade
from worker.store.models import Article, Endpoint, FeedRender, Share, Source, utcnow

CONFIG = """
sources:
  - {name: partner, kind: listing, url: "https://partner.example/news/"}
feeds:
  - {name: all, title: All}
endpoints:
  - {name: archive, kind: file, path: var/shares.jsonl}
  - {name: hook, kind: webhook, url: "https://hooks.example/x",
     secret: "${HOOK_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"}
"""


def test_each_event_once_and_nothing_from_before(tmp_path: Path) -> None:
    (tmp_path / "syndicate.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "syndicate.yaml")
    url = f"sqlite:///{tmp_path / 'syndicate.db'}"
    upgrade(url)
    session = get_sessionmaker(url)
    with session() as db:
        source = Source(name="partner", kind="listing", url="https://partner.example/news/")
        old = Article(source=source, url="https://p.example/old", canonical_url="https://p.example/old")
        old.status, old.title = "ready", "Before up started"
        db.add_all(
            [source, old, Endpoint(name="archive", kind="file"), Endpoint(name="hook", kind="webhook")]
        )
        db.add(FeedRender(feed_name="all", format="rss", content_type="x", body=b"", etag="v1", item_count=1))
        db.commit()
        source_id = source.id

    watch = ActivityWatch(session, config, "http://127.0.0.1:8000/")
    assert watch.poll() == []

    with session() as db:
        new = Article(source_id=source_id, url="https://p.example/a", canonical_url="https://p.example/a")
        new.status, new.title = "ready", "A new partnership"
        broken = Article(source_id=source_id, url="https://p.example/b", canonical_url="https://p.example/b")
        broken.status, broken.error = "failed", "HTTP 404 Not Found"
        db.add_all([new, broken])
        db.flush()
        render = db.query(FeedRender).one()
        render.etag, render.item_count = "v2", 2
        db.add(Share(article_id=new.id, endpoint="archive", status="sent", remote_id="k1"))
        db.add(
            Share(
                article_id=new.id, endpoint="hook", status="pending", not_before=utcnow() + timedelta(hours=2)
            )
        )
        db.commit()
    lines = [line[10:] for line in watch.poll()]  # without the time of day
    assert lines[0].split() == [
        "gathered",
        '"A',
        "new",
        'partnership"',
        "from",
        "partner",
        "https://p.example/a",
    ]
    assert lines[1] == "not gathered https://p.example/b from partner: HTTP 404 Not Found"
    assert lines[2] == "feed         all updated: 2 items  http://127.0.0.1:8000/feeds/all.rss"
    assert lines[3] == 'posted       archive: "A new partnership"  var/shares.jsonl'
    assert lines[4].startswith('held         hook: "A new partnership" until ') and lines[4].endswith(" UTC")
    assert len(lines) == 5
    assert watch.poll() == []  # each event once

    with session() as db:
        share = db.query(Share).filter_by(endpoint="hook").one()
        share.status, share.error = "failed", "HTTP 400: bad payload"
        db.commit()
        share_id = share.id
    (line,) = [line[10:] for line in watch.poll()]
    assert line == (
        f'post failed  hook: "A new partnership": HTTP 400: bad payload; `syndicate share retry {share_id}`'
    )
