"""`syndicate story list/show/merge/split` as an operator types them (real processes, real Redis,
SQLite and PostgreSQL): the JSON shape the issue gives, the main version first, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from config.model import parse_config
from config.settings import Settings
from tests.stories.conftest import StoryDB, story_config
from tests.support.services import RedisServer, Syndicate
from worker.runtime import Runtime
from worker.store.db import get_engine
from worker.stories.assign import assign_article


@pytest.fixture
def operator(tmp_path: Path, database_url: str, redis_server: RedisServer) -> tuple[Syndicate, StoryDB]:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(redis_url).flushdb()
    (tmp_path / "syndicate.yaml").write_text(json.dumps(story_config()), encoding="utf-8")
    syn = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    settings = Settings(
        database_url=database_url, redis_url=redis_url, var_dir=tmp_path / "var", public_url="http://f.test"
    )
    return syn, StoryDB(Runtime(settings=settings, config=parse_config(story_config()), base_dir=tmp_path))


def test_story_commands(operator: tuple[Syndicate, StoryDB], database_url: str) -> None:
    syn, db = operator
    try:
        ids = {k: db.add(k) for k in ("s01-a", "s01-e", "s01-d", "n05")}
        for article_id in ids.values():
            assign_article(db.rt, article_id)
        partnership, lyon = db.story_of(ids["s01-a"]), db.story_of(ids["n05"])
        assert partnership is not None and lyon is not None

        listed = syn.run("story", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        stories = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [s["id"] for s in stories] == [lyon, partnership]  # newest first
        first = stories[1]
        assert set(first) == {"id", "title", "articles"}
        assert set(first["articles"][0]) == {"id", "url", "source", "language"}
        assert first["articles"][0]["id"] == ids["s01-d"]  # the main version (the hub's own) first
        assert {a["id"] for a in first["articles"]} == {ids["s01-a"], ids["s01-e"], ids["s01-d"]}
        assert {a["language"] for a in first["articles"]} == {"en", "ro"}
        assert len(syn.run("story", "list", "--json", "--limit", "1").stdout.splitlines()) == 1

        shown = syn.run("story", "show", str(partnership))
        assert shown.returncode == 0, shown.stderr
        main_line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("main"))
        assert str(ids["s01-d"]) in main_line and "clujit-cluster" in main_line
        assert shown.stdout.count(" version ") == 2

        missing = syn.run("story", "show", "999")
        assert missing.returncode == 1 and "no story with id 999" in missing.stderr

        split = syn.run("story", "split", str(ids["s01-e"]))
        assert split.returncode == 0, split.stderr
        assert db.story_of(ids["s01-e"]) not in (partnership, None)
        lonely = syn.run("story", "split", str(ids["n05"]))
        assert lonely.returncode == 1 and "only version of story" in lonely.stderr
        unknown = syn.run("story", "split", "999")
        assert unknown.returncode == 1 and "no article with id 999" in unknown.stderr

        merged = syn.run("story", "merge", str(partnership), str(lyon))
        assert merged.returncode == 0, merged.stderr
        assert db.story_of(ids["n05"]) == partnership and db.story(lyon) is None
        again = syn.run("story", "merge", str(partnership), str(lyon))
        assert again.returncode == 1 and f"no story with id {lyon}" in again.stderr
        usage = syn.run("story", "merge", str(partnership))
        assert usage.returncode == 2
    finally:
        get_engine(database_url).dispose()


def test_merge_with_redis_down_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "syndicate.yaml").write_text(json.dumps(story_config()), encoding="utf-8")
    syn = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
    )
    merged = syn.run("story", "merge", "1", "2")
    assert merged.returncode == 4 and "is unreachable" in merged.stderr
