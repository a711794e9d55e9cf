"""The sweep finds ready articles a dead worker left without a story (between the process step and the
story step) and they get one; SQLite and PostgreSQL, real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from tests.pipeline.conftest import Pipe
from tests.support.services import RedisServer
from worker import redisclient
from worker.ops import sweep
from worker.store.models import Article, utcnow
from worker.stories.assign import assign_article


@pytest.fixture
def client(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/10")
    conn.flushdb()
    monkeypatch.setattr(redisclient, "_bookkeeping", conn)
    yield conn
    conn.flushdb()


def test_ready_articles_without_a_story_are_found_then_assigned(pipe: Pipe, client: redis.Redis) -> None:
    ids = pipe.crawl_and_process("valley")  # the process step only: as if the worker died after it
    assert len(ids) == 3 and all(pipe.article(i).status == "ready" for i in ids)
    assert sweep.find_orphans(pipe.rt, client).stories == []  # just ready: its own task is on it
    with pipe.rt.session() as session:
        session.execute(
            update(Article).where(Article.id.in_(ids)).values(changed_at=utcnow() - timedelta(minutes=5))
        )
    found = sweep.find_orphans(pipe.rt, client)
    assert found.stories == ids and found.counts()["stories"] == 3
    for article_id in found.stories:
        assert assign_article(pipe.rt, article_id).story_id is not None
    assert sweep.find_orphans(pipe.rt, client).stories == []
    assert all(pipe.article(i).story_role == "main" for i in ids)  # three different stories
