"""Every task sent carries a readable ``argsrepr`` (what Flower shows as its arguments), ids still first.

Messages are sent to the real Redis of the ``broker`` fixture and read back from the queue lists.
The runtime is installed process-wide as the ``syndicate`` commands do (tests/web's app otherwise
gets its runtime passed in, and labels are looked up only in an installed one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from worker import tasks
from worker.crawl import sync_sources
from worker.process import process_article
from worker.runtime import Runtime, installed_runtime, set_runtime
from worker.store.models import Share
from worker.web.app import create_web_app

AUTH = {"Authorization": "Bearer web-test-token"}  # tests/web/conftest.py
URL = "https://partner.example/news/cluj-rawabi.html"
TITLE = "Cluj IT Cluster and Rawabi Tech Hub sign a partnership"
BODY = "<p>The Cluj IT Cluster and the Rawabi Tech Hub signed a partnership on training and exchange.</p>"


@pytest.fixture
def installed(runtime: Runtime) -> Iterator[Runtime]:
    before = installed_runtime()
    set_runtime(runtime)
    yield runtime
    set_runtime(before)


def _labels(client: redis.Redis, queue: str) -> list[tuple[str, str, list[Any]]]:
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        out.append((message["headers"]["task"], message["headers"]["argsrepr"], message["headers"]))
    return out


def test_each_kind_of_task_names_its_story_source_endpoint_or_feed(
    installed: Runtime, broker: redis.Redis
) -> None:
    with TestClient(create_web_app(installed)) as client:
        pushed = client.post(
            "/api/articles", json={"url": URL, "title": TITLE, "content_html": BODY}, headers=AUTH
        )
    assert pushed.status_code == 202, pushed.text
    article_id = pushed.json()["id"]
    [(task, label, _)] = _labels(broker, "fetch")
    assert task == "syndicate.process_article"
    assert label == f"({article_id},) article {URL}"  # pending: no title stored yet, its URL then
    assert process_article(installed, article_id).status == "ready"

    with installed.session() as session:
        source_id = sync_sources(session, installed.config)["valley"]
        session.add(Share(article_id=article_id, endpoint="archive", status="pending"))
        session.flush()
        share_id = session.query(Share.id).filter_by(article_id=article_id).scalar()
    tasks.crawl_source.delay(source_id)
    tasks.plan_shares.delay(article_id)
    tasks.deliver_share.delay(share_id)
    tasks.render_feed.delay("all")
    assert [label for _, label, _ in _labels(broker, "crawl")] == [f"({source_id},) source valley"]
    assert sorted(label for _, label, _ in _labels(broker, "share")) == [
        f'({article_id},) article "{TITLE}" {URL}',
        f'({share_id},) share to archive of article {article_id} "{TITLE}" {URL}',
    ]
    assert [label for _, label, _ in _labels(broker, "render")] == ["('all',) feed all"]


def test_without_an_installed_runtime_the_ids_remain_and_sending_works(
    runtime: Runtime, broker: redis.Redis
) -> None:
    before = installed_runtime()
    set_runtime(None)
    try:
        tasks.process_article.delay(12345)
    finally:
        set_runtime(before)
    [(_, label, _)] = _labels(broker, "fetch")
    assert label == "(12345,)"


def test_a_long_title_is_clipped(installed: Runtime, broker: redis.Redis) -> None:
    with TestClient(create_web_app(installed)) as client:
        resp = client.post(
            "/api/articles", json={"url": URL, "title": "A" * 900, "content_html": BODY}, headers=AUTH
        )
    assert resp.status_code == 202
    [(_, label, _)] = _labels(broker, "fetch")
    assert label.startswith("(1,) article https://")
    assert process_article(installed, 1).status == "ready"
    tasks.plan_shares.delay(1)
    [(_, label, _)] = _labels(broker, "share")
    assert len(label) == 200 and label.startswith('(1,) article "AAAA') and label.endswith("…")


def test_a_token_in_a_pushed_url_is_masked_in_the_label(installed: Runtime, broker: redis.Redis) -> None:
    secret_url = "https://partner.example/news/story.html?access_token=s3cr3t-value-123"
    with TestClient(create_web_app(installed)) as client:
        resp = client.post(
            "/api/articles", json={"url": secret_url, "title": TITLE, "content_html": BODY}, headers=AUTH
        )
    assert resp.status_code == 202
    [(_, label, _)] = _labels(broker, "fetch")
    assert "s3cr3t-value-123" not in label and "access_token=" in label, label
