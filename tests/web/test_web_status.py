"""GET /healthz against the real Redis (and a closed port), the status API and page, and the
offline demo site including path traversal attempts."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.services import free_port
from worker.outbox import deliver_share, plan_shares
from worker.pipeline import (
    PushedArticle,
    crawl_source,
    ingest_article,
    process_article,
    render_feed,
    sync_sources,
)
from worker.runtime import Runtime
from worker.web import create_web_app


def test_healthz_ok_with_database_and_real_redis(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    # No worker or beat runs here: /healthz is "starting" for them in its first minute (test_web_healthz.py).
    assert {k: body[k] for k in ("status", "database", "redis", "worker", "beat")} == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
        "worker": "starting",
        "beat": "starting",
    }


def test_healthz_degraded_when_redis_is_down(make_runtime) -> None:
    runtime = make_runtime(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_web_app(runtime)) as client:
        resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["redis"].startswith("error: ")


def test_healthz_does_not_leak_redis_connections(client: TestClient, redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    before = int(admin.info("clients")["connected_clients"])
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    after = int(admin.info("clients")["connected_clients"])
    admin.close()
    assert after - before < 5, (before, after)


@pytest.fixture
def busy(runtime: Runtime) -> Runtime:
    """A runtime with a failed crawl, two ready articles, rendered feeds and shares in each state."""
    with runtime.session() as session:
        ids = sync_sources(session, runtime.config)
    crawl_source(runtime, ids["valley"])  # nothing listens on port 9: an error recorded on the source
    for n, category in ((1, "IT Systems"), (2, "Agriculture")):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Story <{n}>",
                content_html=f"<p>Story {n} is long enough to be an article about the partner clusters.</p>",
                category=category,
            ),
        )
        process_article(runtime, article_id)
        for share_id in plan_shares(runtime, article_id):
            if n == 1:
                deliver_share(runtime, share_id)
    render_feed(runtime, "all")
    render_feed(runtime, "it")
    return runtime


def test_status_api_shows_sources_feeds_and_endpoints(client: TestClient, busy: Runtime) -> None:
    resp = client.get("/api/status")
    assert resp.status_code == 200
    snap = resp.json()

    assert snap["articles"]["total"] == 2 and snap["articles"]["ready"] == 2
    sources = {s["name"]: s for s in snap["sources"]}
    assert set(sources) == {"valley", "api"}
    assert sources["valley"]["kind"] == "listing" and sources["valley"]["errors"] == 1
    assert "TransientFetchError" in sources["valley"]["last_error"]
    assert sources["api"]["articles"] == 2
    feeds = {f["name"]: f for f in snap["feeds"]}
    assert feeds["all"]["items"] == 2 and feeds["it"]["items"] == 1
    assert feeds["all"]["urls"]["atom"] == "http://feeds.example.test/feeds/all.atom"
    assert feeds["all"]["last_modified"] is not None
    [archive] = snap["endpoints"]
    assert archive["last_sent_at"] is not None  # a timestamp: checked for presence, not value
    assert {k: v for k, v in archive.items() if k != "last_sent_at"} == {
        "name": "archive",
        "kind": "file",
        "enabled": True,
        "disabled_reason": None,
        "disabled_at": None,
        "last_error": None,
        "pending": 1,
        "sending": 0,
        "sent": 1,
        "failed": 0,
        "uncertain": 0,
    }
    assert snap["outbox_backlog"] == 1


def test_status_page_lists_the_same_and_escapes_html(client: TestClient, busy: Runtime) -> None:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert "<td>valley</td>" in page and "<td>api</td>" in page
    assert "All partner news (2 items)" in page and "IT Systems (1 items)" in page
    assert 'href="http://feeds.example.test/feeds/it.rss"' in page
    assert "archive (file): 1 sent, 1 pending, 0 failed" in page
    assert "2 articles." in page
    assert "TransientFetchError" in page


def test_status_of_an_empty_system(client: TestClient) -> None:
    snap = client.get("/api/status").json()
    assert snap["articles"] == {"total": 0}
    assert [f["items"] for f in snap["feeds"]] == [0, 0]
    assert client.get("/").status_code == 200


def test_demo_index_and_article(client: TestClient) -> None:
    index = client.get("/demo/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    # Absolute demo links point at whatever host served the page.
    assert "http://127.0.0.1:8000" not in index.text
    article = client.get("/demo/2019/03/cluj-it-cluster-rawabi-tech-hub-partnership.html")
    assert article.status_code == 200
    assert "<article" in article.text


@pytest.mark.parametrize(
    "path",
    [
        "/demo/..%2f..%2fetc/passwd.html",
        "/demo/2019/03/..%2f..%2f..%2fetc%2fpasswd.html",
        "/demo/2019/03/..%2fweb.html",
        "/demo/2019/03/...html",
        "/demo/2019/03/.hidden.html",
        "/demo/2019/03/web.py.html",
        "/demo/2019/03/%2e%2e.html",
        "/demo/2019/03/%2fetc%2fpasswd.html",
        "/demo/2019/03/no-such-story.html",
        "/demo/2019/03/..\\..\\web.html",
        "/demo/2019/03/index%00.html",
        "/demo/../worker/web.py",
    ],
)
def test_demo_path_traversal_is_404(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404, (path, resp.status_code)
    assert "import" not in resp.text and "root:" not in resp.text
