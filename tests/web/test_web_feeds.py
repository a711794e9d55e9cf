"""GET /feeds/<name>.<fmt>: renders published as the worker does, served with validators, and 304
for every form of conditional request (exact, weak and listed ETags, ``*``, If-Modified-Since)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import feedparser
import pytest
import redis
from fastapi.testclient import TestClient

from worker.feedcache import FeedCache
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.render import render_and_publish
from worker.runtime import Runtime


def render_feed(runtime: Runtime, name: str) -> bool:
    """What the ``render_feed`` task does: render, then publish to Redis and the export directory."""
    client = redis.Redis.from_url(runtime.settings.effective_redis_url)
    try:
        return render_and_publish(runtime, name, client)
    finally:
        client.close()


CONTENT_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


@pytest.fixture
def rendered(runtime: Runtime) -> Runtime:
    """Two pushed articles, processed, and both feeds rendered."""
    for n, category in ((1, "IT Systems"), (2, "Agriculture")):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Story number {n}",
                content_html=f"<p>Story number {n} tells of a partnership between two clusters.</p>",
                published=datetime(2024, 4, n, 9, 0, tzinfo=UTC),
                category=category,
            ),
        )
        assert process_article(runtime, article_id).status == "ready"
    assert render_feed(runtime, "all") and render_feed(runtime, "it")
    return runtime


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_feed_is_served_with_type_and_validators(client: TestClient, rendered: Runtime, fmt: str) -> None:
    resp = client.get(f"/feeds/all.{fmt}")

    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(CONTENT_TYPES[fmt])
    assert resp.headers["etag"].startswith('"') and resp.headers["etag"].endswith('"')
    last_modified = parsedate_to_datetime(resp.headers["last-modified"])
    assert abs(last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert resp.headers["cache-control"].startswith("public, max-age=")
    if fmt == "json":
        titles = [item["title"] for item in json.loads(resp.content)["items"]]
    else:
        parsed = feedparser.parse(resp.content)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        titles = [e.title for e in parsed.entries]
    assert titles == ["Story number 2", "Story number 1"]


def test_filtered_feed_holds_only_its_articles(client: TestClient, rendered: Runtime) -> None:
    parsed = feedparser.parse(client.get("/feeds/it.atom").content)
    assert [e.title for e in parsed.entries] == ["Story number 1"]


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "W/{etag}",
        '"something-else", {etag}',
        '"a", W/{etag}, "b"',
        "*",
    ],
    ids=["exact", "weak", "list", "weak-in-list", "star"],
)
def test_if_none_match_gives_304_with_empty_body(
    client: TestClient, rendered: Runtime, if_none_match: str
) -> None:
    first = client.get("/feeds/all.rss")
    etag = first.headers["etag"]
    resp = client.get("/feeds/all.rss", headers={"If-None-Match": if_none_match.format(etag=etag)})

    assert resp.status_code == 304
    assert resp.content == b""
    assert resp.headers["etag"] == etag
    assert resp.headers["last-modified"] == first.headers["last-modified"]


def test_head_gives_headers_without_body(client: TestClient, rendered: Runtime) -> None:
    get = client.get("/feeds/all.atom")
    head = client.head("/feeds/all.atom")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_other_etag_gives_200(client: TestClient, rendered: Runtime) -> None:
    resp = client.get("/feeds/all.rss", headers={"If-None-Match": '"not-the-etag", W/"nor-this"'})
    assert resp.status_code == 200 and resp.content


def test_etag_of_one_format_does_not_match_another(client: TestClient, rendered: Runtime) -> None:
    rss_etag = client.get("/feeds/all.rss").headers["etag"]
    assert client.get("/feeds/all.atom", headers={"If-None-Match": rss_etag}).status_code == 200


def test_if_modified_since(client: TestClient, rendered: Runtime) -> None:
    last_modified = client.get("/feeds/all.atom").headers["last-modified"]
    same = client.get("/feeds/all.atom", headers={"If-Modified-Since": last_modified})
    assert same.status_code == 304 and same.content == b""

    later = format_datetime(parsedate_to_datetime(last_modified) + timedelta(hours=1), usegmt=True)
    assert client.get("/feeds/all.atom", headers={"If-Modified-Since": later}).status_code == 304

    older = format_datetime(parsedate_to_datetime(last_modified) - timedelta(seconds=1), usegmt=True)
    resp = client.get("/feeds/all.atom", headers={"If-Modified-Since": older})
    assert resp.status_code == 200 and b"Story number 1" in resp.content

    assert client.get("/feeds/all.atom", headers={"If-Modified-Since": "yesterday"}).status_code == 200
    # If-None-Match wins over If-Modified-Since when both are sent.
    both = client.get("/feeds/all.atom", headers={"If-Modified-Since": last_modified, "If-None-Match": '"x"'})
    assert both.status_code == 200


def test_a_new_article_changes_the_etag(client: TestClient, rendered: Runtime) -> None:
    old = client.get("/feeds/all.json")
    article_id, _ = ingest_article(
        rendered,
        PushedArticle(
            url="https://partner.example/news/3",
            title="Story number 3",
            content_html="<p>Story number 3 is about the cluster's new members and their plans.</p>",
            published=datetime(2024, 4, 3, 9, 0, tzinfo=UTC),
        ),
    )
    process_article(rendered, article_id)
    # Revalidate on every request, so the test needs no wait for the 50 ms window.
    client.app.state.feed_cache = FeedCache(rendered, revalidate=0.0)  # type: ignore[attr-defined]
    assert render_feed(rendered, "all")

    stale = client.get("/feeds/all.json", headers={"If-None-Match": old.headers["etag"]})
    assert stale.status_code == 200
    assert stale.headers["etag"] != old.headers["etag"]
    assert json.loads(stale.content)["items"][0]["title"] == "Story number 3"


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/unknown.rss",
        "/feeds/all.xml",
        "/feeds/all.RSS",
        "/feeds/all",
        "/feeds/.rss",
        "/feeds/all.rss.bak",
    ],
)
def test_unknown_feed_or_format_is_404(client: TestClient, rendered: Runtime, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404, (path, resp.status_code, resp.text)


def test_configured_but_not_yet_rendered_feed_is_404(client: TestClient) -> None:
    resp = client.get("/feeds/all.rss")
    assert resp.status_code == 404
    assert "all" in resp.json()["detail"]
