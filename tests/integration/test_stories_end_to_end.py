"""Stories through real worker processes: versions pushed over the API join one story before their
shares are planned; other news stays a story of its own; a ready article a dead worker left without a
story gets one from the sweep (SQLite and PostgreSQL, real Redis, real worker and beat)."""

from __future__ import annotations

import html
import time
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from tests.stories.conftest import DEV_ARTICLES
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.store.models import Article, Source

pytestmark = pytest.mark.integration

TOKEN = "stories-token"
# The hub's own write-up (priority 10), a Romanian partner's and an English outlet's, and other news
# from the same cluster in the same week (the Lyon agreement).
PUSHED = [
    ("s01-e", "ziarul-clujean"),
    ("s01-d", "clujit-cluster"),
    ("s01-b", "technews-demo"),
    ("n05", "ziarul-clujean"),
]


def _config(path: Path) -> None:
    path.write_text(
        """
api:
  token: ${STORIES_API_TOKEN}
fetch:
  allow_hosts: ["127.0.0.1"]
sources:
  - {name: clujit-cluster, kind: push, priority: 10}
  - {name: ziarul-clujean, kind: push}
  - {name: technews-demo, kind: push}
feeds:
  - name: all
    title: All partner news
endpoints: []
""",
        encoding="utf-8",
    )


def test_pushed_versions_join_one_story_through_a_worker(
    tmp_path: Path, database_url: str, redis_server: RedisServer
) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + ("/3" if database_url.startswith("sqlite") else "/4")
    redis.Redis.from_url(redis_url).flushdb()
    _config(tmp_path / "syndicate.yaml")
    port = free_port()
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "STORIES_API_TOKEN": TOKEN,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    engine = create_engine(database_url)
    # Left ready without a story, long ago: as if its worker died between the two steps.
    orphan = DEV_ARTICLES["n06"]
    with Session(engine) as session, session.begin():
        source_id = session.scalar(select(Source.id).where(Source.name == "technews-demo"))
        assert source_id is not None
        row = Article(
            source_id=source_id,
            url="http://127.0.0.1:9/n06.html",
            canonical_url="http://127.0.0.1:9/n06.html",
            status="ready",
            title=orphan["title"],
            text=orphan["content_text"],
            language=orphan["language"],
        )
        session.add(row)
        session.flush()
        orphan_id = row.id
    try:
        syn.start("worker", "worker", "--concurrency", "2")
        syn.start("beat", "beat")  # its sweep finds the orphan
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        ids = {}
        for dev_id, source in PUSHED:
            found = DEV_ARTICLES[dev_id]
            body = "".join(f"<p>{html.escape(p)}</p>" for p in found["content_text"].split("\n") if p.strip())
            answer = requests.post(
                f"http://127.0.0.1:{port}/api/articles",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={
                    "url": f"http://127.0.0.1:9/{dev_id}.html",
                    "title": found["title"],
                    "content_html": body,
                    "published": found["published"],
                    "language": found["language"],
                    "source": source,
                },
                timeout=10,
            )
            assert answer.status_code == 202, answer.text
            ids[dev_id] = answer.json()["id"]
        deadline = time.monotonic() + 120
        rows: dict[int, tuple[str, int | None, str | None]] = {}
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = {
                    r[0]: (r[1], r[2], r[3])
                    for r in conn.execute(text("SELECT id, status, story_id, story_role FROM articles"))
                }
            if len(rows) == len(PUSHED) + 1 and all(r[1] is not None for r in rows.values()):
                break
            time.sleep(0.3)
        assert all(r[0] == "ready" and r[1] is not None for r in rows.values()), (rows, syn.logs())
        assert rows[orphan_id][2] == "main"
        story = {dev_id: rows[i][1] for dev_id, i in ids.items()}
        assert story["s01-e"] == story["s01-d"] == story["s01-b"], rows
        assert story["n05"] != story["s01-d"]
        assert rows[ids["s01-d"]][2] == "main"  # the hub's own version, whenever it arrived
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM stories")).scalar() == 3
    finally:
        engine.dispose()
        syn.stop()
