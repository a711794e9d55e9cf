"""GET /healthz against the real Redis (and a closed port); the status API, page and text with
failures and retry endpoints; /api/docs from local assets and the OpenAPI document; the offline
demo site including path traversal attempts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import lxml.html
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.services import free_port
from worker.crawl import crawl_source, sync_sources
from worker.errors import HTTPStatusError, PermanentShareError
from worker.ingest import PushedArticle, ingest_article
from worker.ops.status import (
    EndpointStatus,
    FailedArticle,
    FailedShare,
    FeedStatus,
    SourceStatus,
    StatusSnapshot,
    human_time,
    render_status_text,
)
from worker.outbox.delivery import deliver_share, mark_share_failed
from worker.outbox.planning import plan_shares
from worker.process import mark_article_failed, process_article
from worker.render import render_current
from worker.runtime import Runtime
from worker.store.models import Article, Share
from worker.web.app import create_web_app


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
    render_current(runtime, "all")
    render_current(runtime, "it")
    return runtime


def test_status_api_shows_sources_feeds_and_endpoints(client: TestClient, busy: Runtime) -> None:
    resp = client.get("/api/status")
    assert resp.status_code == 200
    snap = resp.json()

    assert snap["articles"]["total"] == 2 and snap["articles"]["ready"] == 2
    sources = {s["name"]: s for s in snap["sources"]}
    assert set(sources) == {"valley", "api"}
    valley, api = sources["valley"], sources["api"]
    assert valley["kind"] == "listing" and valley["errors"] == 1 and valley["state"] == "backing off"
    assert "robots.txt" in valley["last_error"] and valley["failing_since"] is not None
    # The next beat tick that the back-off does not skip.
    assert valley["next_run_at"] >= valley["next_crawl_at"] and valley["next_run_at"] > snap["generated_at"]
    assert valley["paused_at"] is None and valley["pause_reason"] is None
    assert api["articles"] == 2 and api["new_articles"] == 2 and api["next_run_at"] is None
    feeds = {f["name"]: f for f in snap["feeds"]}
    assert feeds["all"]["items"] == 2 and feeds["it"]["items"] == 1
    assert feeds["all"]["urls"]["atom"] == "http://feeds.example.test/feeds/all.atom"
    assert feeds["all"]["last_modified"] is not None
    # Nothing fetched the feeds: the counters (from worker.metrics, on the real Redis) say 0.
    assert (feeds["all"]["requests"], feeds["all"]["not_modified_share"]) == (0, None)
    [archive] = snap["endpoints"]
    assert archive["last_sent_at"] is not None  # a timestamp: checked for presence, not value
    assert {k: v for k, v in archive.items() if k != "last_sent_at"} == {
        "name": "archive",
        "kind": "file",
        "enabled": True,
        "disabled_reason": None,
        "disabled_at": None,
        "last_error": None,
        "last_error_at": None,
        "sent_today": 1,
        "backlog": 1,
        "pending": 1,
        "sending": 0,
        "sent": 1,
        "failed": 0,
        "uncertain": 0,
        "settling": 0,
        "needs_operator": 0,
        "skipped": 0,
        "skipped_reasons": {},
        "missing_secrets": [],
    }
    assert snap["outbox_backlog"] == 1
    assert snap["failures"] == {"articles": [], "shares": []}
    # No worker or beat ever beat on this Redis.
    live = snap["liveness"]
    assert (live["workers"], live["beat"], live["worker_state"], live["beat_state"]) == (
        [],
        None,
        "missing",
        "missing",
    )


def test_status_snapshot_is_what_the_schema_documents(client: TestClient, failing: Runtime) -> None:
    """Every key the snapshot has is in the response model (extra="forbid" would 500 otherwise),
    and every documented field is really produced."""
    snap = client.get("/api/status").json()
    assert set(snap) == set(StatusSnapshot.model_fields)
    assert set(snap["sources"][0]) == set(SourceStatus.model_fields)
    assert set(snap["feeds"][0]) == set(FeedStatus.model_fields)
    assert set(snap["endpoints"][0]) == set(EndpointStatus.model_fields)
    assert set(snap["failures"]["articles"][0]) == set(FailedArticle.model_fields)
    assert set(snap["failures"]["shares"][0]) == set(FailedShare.model_fields)


@pytest.fixture
def failing(busy: Runtime) -> Runtime:
    """:func:`busy` plus an article that failed for good and a share the endpoint refused."""
    article_id, _ = ingest_article(
        busy,
        PushedArticle(
            url="https://partner.example/news/gone",
            title="Gone <b>story</b>",
            content_html="<p>Never processed.</p>",
        ),
    )
    mark_article_failed(busy, article_id, HTTPStatusError("HTTP 410 Gone <script>", status=410))
    with busy.session() as session:
        pending = session.scalars(select(Share.id).where(Share.status == "pending")).one()
    mark_share_failed(busy, pending, PermanentShareError("HTTP 400: text rejected by the partner"))
    busy.failed_ids = (article_id, pending)  # type: ignore[attr-defined]
    return busy


def _page(client: TestClient) -> lxml.html.HtmlElement:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    return lxml.html.fromstring(resp.text)


def _cells(row: lxml.html.HtmlElement) -> list[str]:
    return [" ".join(td.text_content().split()) for td in row.findall("td")]


def test_status_page_is_self_contained_refreshes_and_fits_a_phone(client: TestClient, busy: Runtime) -> None:
    page = _page(client)
    head = page.find("head")
    viewport = head.xpath("meta[@name='viewport']/@content")
    assert viewport == ["width=device-width, initial-scale=1"]
    [refresh] = head.xpath("meta[@http-equiv='refresh']/@content")
    assert 15 <= int(refresh) <= 30
    # Nothing to fetch: styles and script inline, no external stylesheet, script or font.
    assert head.find("style") is not None and len(head.find("style").text) > 200
    assert page.xpath("//script[@src]") == [] and page.xpath("//link[@rel='stylesheet']") == []
    # Tables scroll sideways on a narrow screen instead of overflowing the page.
    assert all(t.getparent().get("class") == "scroll" for t in page.iter("table"))


def test_status_page_lists_sources_feeds_and_endpoints(client: TestClient, busy: Runtime) -> None:
    page = _page(client)
    sources = {row.get("data-source"): _cells(row) for row in page.xpath("//table[@id='sources']/tr[td]")}
    assert set(sources) == {"valley", "api"}
    # source, kind, state, articles, new, failed, last crawl, next crawl, last error
    valley = sources["valley"]
    assert valley[:6] == ["valley", "listing", "backing off", "0", "0", "0"]
    assert valley[6] == "just now" and valley[7].startswith("in ")
    assert valley[8].startswith("since just now: ") and "robots.txt" in valley[8]
    assert sources["api"][:6] == ["api", "push", "ok", "2", "2", "0"] and sources["api"][7] == "push"
    feeds = {row.get("data-feed"): _cells(row) for row in page.xpath("//table[@id='feeds']/tr[td]")}
    assert feeds["all"][:3] == ["All partner news", "2", "just now"]
    assert feeds["it"][:2] == ["IT Systems", "1"] and feeds["it"][3] == "no requests yet"
    assert page.xpath("//tr[@data-feed='it']//a[text()='rss']/@href") == [
        "http://feeds.example.test/feeds/it.rss"
    ]
    [archive] = page.xpath("//table[@id='endpoints']/tr[td]")
    # endpoint, kind, sent today, sent, failed, uncertain, backlog, state
    assert _cells(archive)[:9] == ["archive", "file", "1", "1", "0", "0", "0", "1", "enabled"]
    assert page.get_element_by_id("articles").text_content() == "2 articles (2 ready)."
    summary = page.get_element_by_id("summary").text_content()
    assert "failing sources: 1" in summary and "failed articles: 0, shares: 0" in summary
    assert "worker: missing" in summary and "outbox backlog: 1" in summary
    assert page.get_element_by_id("failed-articles-empty") is not None


def test_status_page_times_are_human_with_the_exact_time_in_the_title(
    client: TestClient, busy: Runtime
) -> None:
    snap = client.get("/api/status").json()
    page = _page(client)
    times = page.xpath("//time")
    assert times, "no <time> on the page"
    for element in times:
        exact = datetime.fromisoformat(element.get("title"))
        assert (
            exact.tzinfo is not None
            and exact.microsecond == 0
            and element.get("datetime") == element.get("title")
        )
        assert (
            element.text in ("just now",) or element.text.endswith(" ago") or element.text.startswith("in ")
        )
    valley = next(s for s in snap["sources"] if s["name"] == "valley")
    expected = datetime.fromisoformat(valley["next_run_at"]).isoformat(timespec="seconds")
    [cell] = page.xpath("//tr[@data-source='valley']/td[8]/time")
    assert cell.get("title") == expected


def test_status_page_lists_failures_with_reasons_and_retry_buttons(
    client: TestClient, failing: Runtime, auth: dict[str, str]
) -> None:
    article_id, share_id = failing.failed_ids  # type: ignore[attr-defined]
    resp = client.get("/")
    page = lxml.html.fromstring(resp.text)
    [article] = page.xpath("//table[@id='failed-articles']/tr[td]")
    cells = _cells(article)
    assert cells[:4] == [
        str(article_id),
        "api",
        "https://partner.example/news/gone",  # never processed: no title yet
        "HTTPStatusError: HTTP 410 Gone <script>",
    ]
    assert article.xpath(".//button/@data-retry") == [f"/api/articles/{article_id}/retry"]
    [share] = page.xpath("//table[@id='failed-shares']/tr[td]")
    cells = _cells(share)
    assert cells[:5] == [
        str(share_id),
        "archive",
        "Story <2>",
        "failed",
        "PermanentShareError: HTTP 400: text rejected by the partner",
    ]
    assert share.xpath(".//button/@data-retry") == [f"/api/shares/{share_id}/retry"]
    # Escaped, not markup: the only <script> element is the page's own.
    assert len(page.xpath("//script")) == 1
    token = auth["Authorization"].removeprefix("Bearer ")
    assert token not in resp.text  # the operator types the token; the page never carries it
    [endpoint] = page.xpath("//table[@id='endpoints']/tr[td]")
    assert _cells(endpoint)[4] == "1"  # failed
    summary = page.get_element_by_id("summary").text_content()
    assert "failed articles: 1, shares: 1" in summary


def test_retry_endpoints_need_the_token_and_enqueue(
    client: TestClient, failing: Runtime, auth: dict[str, str], broker, queued
) -> None:
    article_id, share_id = failing.failed_ids  # type: ignore[attr-defined]
    assert client.post(f"/api/shares/{share_id}/retry").status_code == 401
    wrong = client.post(f"/api/articles/{article_id}/retry", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert queued(broker, "share") == [] and queued(broker, "fetch") == []

    resp = client.post(f"/api/shares/{share_id}/retry", headers=auth)
    assert resp.status_code == 200 and resp.json() == {"id": share_id, "status": "queued"}
    resp = client.post(f"/api/articles/{article_id}/retry", headers=auth)
    assert resp.status_code == 200 and resp.json() == {"id": article_id, "status": "queued"}
    assert [(m["task"], m["args"]) for m in queued(broker, "share")] == [
        ("syndicate.deliver_share", [share_id])
    ]
    assert [(m["task"], m["args"]) for m in queued(broker, "fetch")] == [
        ("syndicate.process_article", [article_id])
    ]
    with failing.session() as session:
        share = session.get(Share, share_id)
        article = session.get(Article, article_id)
        assert share is not None and article is not None and share.status == "pending"
        assert (article.status, article.error, article.attempts) == ("pending", None, 0)

    again = client.post(f"/api/shares/{share_id}/retry", headers=auth)
    assert again.status_code == 409 and "not failed" in again.json()["detail"]
    assert client.post(f"/api/articles/{article_id}/retry", headers=auth).status_code == 409
    assert client.post("/api/shares/999999/retry", headers=auth).status_code == 404
    assert client.post("/api/articles/999999/retry", headers=auth).status_code == 404
    assert client.get("/api/status").json()["failures"] == {"articles": [], "shares": []}


def test_status_text_prints_the_same_sections(client: TestClient, failing: Runtime) -> None:
    article_id, share_id = failing.failed_ids  # type: ignore[attr-defined]
    text = render_status_text(client.get("/api/status").json())
    lines = text.splitlines()
    assert lines[0] == "articles: total 3, failed 1, ready 2"
    assert lines[1] == "worker: MISSING (none)   beat: MISSING (none)"
    valley = next(ln for ln in lines if ln.strip().startswith("valley "))
    assert "last crawl just now, next in " in valley and "BACKING OFF since just now: " in valley
    archive = next(ln for ln in lines if ln.strip().startswith("archive "))
    assert "sent 1, pending 0, failed 1, uncertain 0; sent today 1, backlog 0" in archive
    assert any(ln.strip().startswith(f"article {article_id} ") and "HTTP 410 Gone" in ln for ln in lines), (
        text
    )
    assert any(ln.strip().startswith(f"share {share_id} ") and "text rejected" in ln for ln in lines), text


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(seconds=-2), "just now"),
        (timedelta(seconds=-42), "42 s ago"),
        (timedelta(minutes=-3, seconds=-20), "3 min ago"),
        (timedelta(minutes=12, seconds=30), "in 12 min"),
        (timedelta(hours=-5), "5 h ago"),
        (timedelta(days=3, hours=1), "in 3 days"),
    ],
)
def test_human_time(offset: timedelta, expected: str) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert human_time((now + offset).isoformat(), now) == expected
    assert human_time(None, now) == "never"


def test_a_source_never_crawled_is_due_now(client: TestClient, runtime: Runtime) -> None:
    with runtime.session() as session:
        sync_sources(session, runtime.config)
    row = _page(client).xpath("//tr[@data-source='valley']")[0]
    assert _cells(row)[2] == "new" and _cells(row)[6:8] == ["never", "just now"]


def test_status_of_an_empty_system(client: TestClient) -> None:
    snap = client.get("/api/status").json()
    assert snap["articles"] == {"total": 0}
    assert [f["items"] for f in snap["feeds"]] == [0, 0]
    page = _page(client)
    assert page.get_element_by_id("failed-shares-empty").text == "no failed shares"
    assert page.get_element_by_id("sources-empty").text == "no sources in the database yet"


def test_status_without_redis_still_answers(make_runtime) -> None:
    runtime = make_runtime(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    import redis as redis_lib

    runtime.redis_client = redis_lib.Redis.from_url(runtime.settings.effective_redis_url, socket_timeout=1)
    with TestClient(create_web_app(runtime)) as client:
        snap = client.get("/api/status").json()
        page = client.get("/")
    assert snap["liveness"]["worker_state"] == "unknown" and "ConnectionError" in snap["liveness"]["error"]
    assert [f["requests"] for f in snap["feeds"]] == [None, None]
    assert page.status_code == 200 and "worker: unknown" in page.text


def test_api_docs_are_served_from_local_assets(client: TestClient) -> None:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    doc = lxml.html.fromstring(resp.text)
    refs = doc.xpath("//script/@src | //link/@href")
    assert len(refs) >= 3, refs  # the bundle, its stylesheet, the favicon
    inline = " ".join(s.text or "" for s in doc.xpath("//script[not(@src)]"))
    assert "/api/openapi.json" in inline
    for ref in [*refs, "/api/openapi.json"]:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 500, (ref, asset.status_code)
    assert "http://" not in resp.text.replace("http://feeds.example.test", "") and "https://" not in resp.text
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN-loaded ReDoc is off


def test_openapi_documents_ingest_status_preview_and_retry(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    operations = {
        ("post", "/api/articles"): "202",
        ("get", "/api/status"): "200",
        ("get", "/api/articles/{ref}/preview"): "200",
        ("post", "/api/shares/{share_id}/retry"): "200",
        ("post", "/api/articles/{article_id}/retry"): "200",
    }
    for (method, path), ok in operations.items():
        op = paths[path][method]
        assert op.get("description") and op.get("summary"), (method, path)
        assert ok in op["responses"], (method, path)
    status_ok = paths["/api/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert status_ok == {"$ref": "#/components/schemas/StatusSnapshot"}
    for path in ("/api/shares/{share_id}/retry", "/api/articles/{article_id}/retry"):
        op = paths[path]["post"]
        assert {"401", "404", "409"} <= set(op["responses"])
        assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/RetryQueued"
        }
        assert op.get("security"), path  # the bearer token shows as a lock in Swagger UI
    source = schema["components"]["schemas"]["SourceStatus"]["properties"]
    assert "next_run_at" in source and source["next_run_at"].get("description")


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


def test_standby_beats_are_shown_fresh_or_stale() -> None:
    from worker.ops.status import _liveness_line
    from worker.web.statuspage import _liveness

    live = {
        "workers": [{"name": "celery@a", "age_seconds": 1.0}],
        "beat": {"name": "beat@a", "age_seconds": 2.0},
        "standby": [{"name": "beat@b", "age_seconds": 4.0}, {"name": "beat@c", "age_seconds": 300.0}],
        "worker_state": "ok",
        "beat_state": "ok",
        "error": None,
    }
    badges = "".join(_liveness(live))
    assert '<span class="badge ok">standby beat: beat@b</span>' in badges
    assert '<span class="badge warn">standby beat: beat@c (stale)</span>' in badges
    line = _liveness_line(live, datetime.now(UTC))
    assert line.endswith("standby: beat@b 4 s ago, beat@c 5 min ago STALE"), line
