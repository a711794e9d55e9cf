"""The stories API (token-protected, SQLite and PostgreSQL, real Redis): list, show, merge, split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.stories.conftest import StoryDB
from worker import tasks
from worker.runtime import Runtime
from worker.stories.assign import assign_article


def _stories(runtime: Runtime) -> tuple[StoryDB, dict[str, int]]:
    db = StoryDB(runtime)
    ids = {k: db.add(k) for k in ("s01-a", "s01-d", "n05")}
    for article_id in ids.values():
        assign_article(runtime, article_id)
    return db, ids


def test_stories_need_the_token(client: TestClient) -> None:
    assert client.get("/api/stories").status_code == 401
    assert client.get("/api/stories/1").status_code == 401
    assert client.post("/api/stories/1/merge", json={"other": 2}).status_code == 401
    assert client.post("/api/articles/1/split").status_code == 401


def test_list_show_merge_split(
    client: TestClient,
    runtime: Runtime,
    auth: dict[str, str],
    broker: redis.Redis,
    queued: Callable[[redis.Redis, str], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "_redis", lambda: broker)  # the renders' debounce keys: the test's Redis
    db, ids = _stories(runtime)
    partnership, lyon = db.story_of(ids["s01-a"]), db.story_of(ids["n05"])
    assert partnership is not None and lyon is not None and partnership != lyon

    listed = client.get("/api/stories", headers=auth)
    assert listed.status_code == 200
    stories = listed.json()
    assert [s["id"] for s in stories] == [lyon, partnership]
    assert set(stories[1]) == {"id", "title", "articles"}
    assert [set(a) for a in stories[1]["articles"]] == [{"id", "url", "source", "language"}] * 2
    assert client.get("/api/stories?limit=1", headers=auth).json()[0]["id"] == lyon
    assert client.get("/api/stories?limit=0", headers=auth).status_code == 422

    shown = client.get(f"/api/stories/{partnership}", headers=auth)
    assert shown.status_code == 200
    detail = shown.json()
    assert detail["main"] == ids["s01-d"] and detail["articles"][0]["role"] == "main"
    assert {a["id"] for a in detail["articles"]} == {ids["s01-a"], ids["s01-d"]}
    missing = client.get("/api/stories/999", headers=auth)
    assert missing.status_code == 404 and missing.json()["detail"] == "no story with id 999"

    split = client.post(f"/api/articles/{ids['s01-a']}/split", headers=auth)
    assert split.status_code == 200, split.text
    body = split.json()
    assert body["renders"] == "queued" and body["feeds"] == ["all"]
    assert body["story"]["articles"][0]["id"] == ids["s01-a"]
    assert db.story_of(ids["s01-a"]) not in (partnership, None)
    renders = [m["args"] for m in queued(broker, "render") if m["task"] == "syndicate.render_feed"]
    assert renders == [["all"]]
    lonely = client.post(f"/api/articles/{ids['n05']}/split", headers=auth)
    assert lonely.status_code == 409 and "only version" in lonely.json()["detail"]
    assert client.post("/api/articles/999/split", headers=auth).status_code == 404

    merged = client.post(f"/api/stories/{partnership}/merge", headers=auth, json={"other": lyon})
    assert merged.status_code == 200, merged.text
    assert {a["id"] for a in merged.json()["story"]["articles"]} == {ids["s01-d"], ids["n05"]}
    assert db.story(lyon) is None
    again = client.post(f"/api/stories/{partnership}/merge", headers=auth, json={"other": lyon})
    assert again.status_code == 404
    itself = client.post(f"/api/stories/{partnership}/merge", headers=auth, json={"other": partnership})
    assert itself.status_code == 409
    assert client.post(f"/api/stories/{partnership}/merge", headers=auth, json={}).status_code == 422
