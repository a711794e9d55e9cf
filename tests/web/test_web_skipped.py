"""Shares the planner leaves out are counted, with their reason, in ``/api/status`` and on the status page.

The README's own curl example pushes a story dated 2019-03-06: it is the back catalogue of any endpoint
added since (``too_old``), as a crawled story found by a source's first crawl is, unless the endpoint's
``max_age`` or ``back_catalogue`` says otherwise. The push goes through the real app (``POST
/api/articles``, its message on the real Redis); the worker's two stages then run in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from worker.outbox.planning import plan_shares
from worker.process import process_article
from worker.runtime import Runtime
from worker.store.models import Share, ShareSkip
from worker.web.app import create_web_app

README_PUSH = {
    "url": "https://partner.example/story",
    "title": "A story",
    "content_html": "<p>Text</p>",
    "published": "2019-03-06T10:00:00Z",
    "category": "IT Systems",
}


def _push_and_plan(
    client: TestClient, rt: Runtime, auth: dict[str, str], body: dict[str, Any]
) -> tuple[int, list[int]]:
    """Push ``body`` through the API, then run what the worker runs for it; the article and its shares."""
    answer = client.post("/api/articles", json=body, headers=auth)
    assert answer.status_code == 202, answer.text
    article_id = int(answer.json()["id"])
    assert process_article(rt, article_id).share
    return article_id, plan_shares(rt, article_id)


def test_a_pushed_back_catalogue_story_is_skipped_and_status_says_why(
    make_runtime: Callable[..., Runtime],
    redis_url: str,
    broker: redis.Redis,
    auth: dict[str, str],
    config_factory: Callable[..., dict[str, Any]],
) -> None:
    rt = make_runtime(
        config_factory(
            endpoints=[
                {"name": "archive", "kind": "file", "path": "shares.jsonl"},
                {"name": "recent", "kind": "file", "path": "recent.jsonl", "max_age": "3d"},
                {"name": "everything", "kind": "file", "path": "all.jsonl", "back_catalogue": True},
                {"name": "sport", "kind": "file", "path": "sport.jsonl", "categories": ["Sport"]},
            ]
        ),
        redis_url=redis_url,
    )
    with TestClient(create_web_app(rt), raise_server_exceptions=False) as client:
        old_id, old_shares = _push_and_plan(client, rt, auth, README_PUSH)
        yesterday = (datetime.now(UTC) - timedelta(hours=20)).isoformat().replace("+00:00", "Z")
        new_id, new_shares = _push_and_plan(
            client, rt, auth, {**README_PUSH, "url": "https://partner.example/today", "published": yesterday}
        )
        with rt.session() as session:
            shared = {(s.article_id, s.endpoint) for s in session.scalars(select(Share))}
            skips = {(s.article_id, s.endpoint): s.reason for s in session.scalars(select(ShareSkip))}
        # 2019: only the endpoint that wants everything shares it; the others say why not.
        assert shared == {
            (old_id, "everything"),
            (new_id, "archive"),
            (new_id, "recent"),
            (new_id, "everything"),
        }
        assert len(old_shares) == 1 and len(new_shares) == 3
        assert skips == {
            (old_id, "archive"): "too_old",
            (old_id, "recent"): "too_old",
            (old_id, "sport"): "routing",
            (new_id, "sport"): "routing",
        }

        status = client.get("/api/status", headers=auth)
        assert status.status_code == 200, status.text
        endpoints = {e["name"]: e for e in status.json()["endpoints"]}
        assert (endpoints["archive"]["skipped"], endpoints["archive"]["skipped_reasons"]) == (
            1,
            {"too_old": 1},
        )
        assert endpoints["sport"]["skipped_reasons"] == {"routing": 2}
        assert (endpoints["everything"]["skipped"], endpoints["everything"]["pending"]) == (0, 2)

        page = client.get("/", headers=auth)
        assert page.status_code == 200
        row = page.text.split('data-endpoint="archive"', 1)[1].split("</tr>", 1)[0]
        assert "too old: pushed" in row

        # Sent on purpose (`syndicate share send`): no longer counted as skipped.
        assert plan_shares(rt, old_id, force=["archive"])
        again = {e["name"]: e for e in client.get("/api/status", headers=auth).json()["endpoints"]}
        assert (again["archive"]["skipped"], again["archive"]["pending"]) == (0, 2)
