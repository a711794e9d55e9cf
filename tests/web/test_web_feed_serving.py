"""Serving feeds from memory: encodings negotiated, validators per encoding, WebSub ``Link`` headers,
the export directory, and revalidation through Redis without the database (real Redis, real app)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import event

from worker import feedcache
from worker.feedcache import FeedCache, atomic_write
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.render import render_and_publish
from worker.runtime import Runtime
from worker.store.db import get_engine
from worker.web.app import create_web_app

HUB = "https://hub.example.test/"
PUBLIC_URL = "http://feeds.example.test"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def push(runtime: Runtime, n: int) -> None:
    """Ingest and process one article."""
    article_id, _ = ingest_article(
        runtime,
        PushedArticle(
            url=f"https://partner.example/news/{n}",
            title=f"Story number {n}",
            content_html=f"<p>Story number {n} tells of a partnership between two clusters. </p>" * 20,
            published=datetime(2024, 4, n, 9, 0, tzinfo=UTC),
        ),
    )
    assert process_article(runtime, article_id).status == "ready"


@pytest.fixture
def hub_runtime(make_runtime: Callable[..., Runtime], redis_url: str, config_factory: Any) -> Runtime:
    """A runtime whose config names a WebSub hub."""
    return make_runtime(config_factory(websub={"hub": HUB}), redis_url=redis_url)


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's Redis database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def published(hub_runtime: Runtime, rclient: redis.Redis) -> Runtime:
    """Two articles, rendered and published as the worker does."""
    push(hub_runtime, 1)
    push(hub_runtime, 2)
    assert render_and_publish(hub_runtime, "all", rclient)
    return hub_runtime


@pytest.fixture
def clock() -> Clock:
    """The feed cache's clock."""
    return Clock()


@pytest.fixture
def web(published: Runtime, clock: Clock) -> Iterator[TestClient]:
    """The app over :func:`published`, its feed cache on the hand-moved clock."""
    app = create_web_app(published)
    app.state.feed_cache = FeedCache(published, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def stored_body(runtime: Runtime, fmt: str) -> bytes:
    """The render the database holds."""
    (render,) = [r for r in feedcache.load_renders(runtime, "all") if r.fmt == fmt]
    return render.body


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_gzip_is_negotiated_with_its_own_etag_and_vary(web: TestClient, published: Runtime, fmt: str) -> None:
    plain = web.get(f"/feeds/all.{fmt}", headers={"Accept-Encoding": "identity"})
    zipped = web.get(f"/feeds/all.{fmt}", headers={"Accept-Encoding": "gzip"})

    assert plain.headers.get("content-encoding") is None
    assert plain.content == stored_body(published, fmt)
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decoded it
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    # RSS and Atom also vary on Accept: a browser gets them as application/xml (see below).
    vary = "Accept-Encoding" if fmt == "json" else "Accept, Accept-Encoding"
    assert plain.headers["vary"] == zipped.headers["vary"] == vary
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    assert zipped.headers["last-modified"] == plain.headers["last-modified"]


def test_each_encoding_revalidates_only_its_own_etag(web: TestClient) -> None:
    zipped_etag = web.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip"}).headers["etag"]

    again = web.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped_etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == zipped_etag
    assert again.headers["vary"] == "Accept, Accept-Encoding"
    assert "content-encoding" not in again.headers
    # A client that no longer takes gzip holds the wrong bytes: it gets the plain representation.
    plain = web.get("/feeds/all.rss", headers={"Accept-Encoding": "identity", "If-None-Match": zipped_etag})
    assert plain.status_code == 200 and plain.headers.get("content-encoding") is None


# What Chromium sends for a page it navigates to, and what feed readers send.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
READER_ACCEPTS = [
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.7",
    "application/atom+xml,application/rss+xml;q=0.9,text/html;q=0.1",
    "*/*",
    "",
]
FEED_TYPES = {"rss": "application/rss+xml; charset=utf-8", "atom": "application/atom+xml; charset=utf-8"}


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_a_browser_gets_the_feed_as_xml_and_readers_get_the_same_bytes_as_before(
    web: TestClient, published: Runtime, fmt: str
) -> None:
    """Issue 16: Chromium showed /feeds/all.rss as raw text (application/rss+xml gets no XSL)."""
    url = f"/feeds/all.{fmt}"
    page = web.get(url, headers={"Accept": BROWSER_ACCEPT, "Accept-Encoding": "identity"})
    assert page.status_code == 200 and page.headers["content-type"] == "application/xml; charset=utf-8"
    assert page.content == stored_body(published, fmt)
    assert page.headers["vary"] == "Accept, Accept-Encoding"
    for accept in READER_ACCEPTS:
        feed = web.get(url, headers={"Accept": accept, "Accept-Encoding": "identity"})
        assert feed.headers["content-type"] == FEED_TYPES[fmt], accept
        assert feed.content == page.content and feed.headers["vary"] == "Accept, Accept-Encoding"
        # Another media type is another representation: its own entity-tag.
        assert feed.headers["etag"] == page.headers["etag"].replace('-page"', '"')
    # Each revalidates only its own tag.
    etag = page.headers["etag"]
    again = web.get(
        url, headers={"Accept": BROWSER_ACCEPT, "Accept-Encoding": "identity", "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.headers["etag"] == etag
    reader = web.get(url, headers={"Accept": "*/*", "Accept-Encoding": "identity", "If-None-Match": etag})
    assert reader.status_code == 200 and reader.headers["content-type"] == FEED_TYPES[fmt]
    zipped = web.get(url, headers={"Accept": BROWSER_ACCEPT, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == page.content
    assert zipped.headers["content-type"] == "application/xml; charset=utf-8"
    assert zipped.headers["etag"] == etag[:-1] + '-gzip"'


def test_json_feed_is_json_for_browsers_too(web: TestClient) -> None:
    resp = web.get("/feeds/all.json", headers={"Accept": BROWSER_ACCEPT})
    assert resp.headers["content-type"] == "application/feed+json; charset=utf-8"
    assert resp.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [("gzip;q=0", None), ("deflate", None), ("*", "br"), ("gzip, br;q=0.5", "gzip"), ("br, gzip", "br")],
)
def test_accept_encoding_weights(web: TestClient, accept: str, expected: str | None) -> None:
    if feedcache.brotli is None and expected == "br":
        expected = "gzip"
    resp = web.get("/feeds/all.atom", headers={"Accept-Encoding": accept})
    assert resp.headers.get("content-encoding") == expected


def test_brotli_when_installed(web: TestClient) -> None:
    brotli = pytest.importorskip("brotli")
    raw = web.get("/feeds/all.json", headers={"Accept-Encoding": "br"})
    assert raw.headers["content-encoding"] == "br"
    assert raw.headers["etag"].endswith('-br"')
    zipped = web.get("/feeds/all.json", headers={"Accept-Encoding": "gzip"})
    assert int(raw.headers["content-length"]) < int(zipped.headers["content-length"])
    assert brotli is not None


def test_link_headers_name_the_hub_and_the_topic(web: TestClient) -> None:
    for fmt in ("rss", "atom", "json"):
        for resp in (
            web.get(f"/feeds/all.{fmt}"),
            web.get(f"/feeds/all.{fmt}", headers={"If-None-Match": "*"}),
            web.head(f"/feeds/all.{fmt}"),
        ):
            assert resp.headers["link"] == f'<{HUB}>; rel="hub", <{PUBLIC_URL}/feeds/all.{fmt}>; rel="self"'


def test_without_a_hub_only_self_is_linked(
    make_runtime: Callable[..., Runtime], redis_url: str, rclient: redis.Redis
) -> None:
    runtime = make_runtime(redis_url=redis_url)
    push(runtime, 1)
    render_and_publish(runtime, "all", rclient)
    with TestClient(create_web_app(runtime)) as client:
        assert client.get("/feeds/all.rss").headers["link"] == f'<{PUBLIC_URL}/feeds/all.rss>; rel="self"'


def test_head_has_the_length_of_the_body_it_omits(web: TestClient) -> None:
    for accept in ("identity", "gzip"):
        get = web.get("/feeds/all.rss", headers={"Accept-Encoding": accept})
        head = web.head("/feeds/all.rss", headers={"Accept-Encoding": accept})
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        assert head.headers["etag"] == get.headers["etag"]


def test_requests_and_304s_touch_neither_database_nor_redis(
    web: TestClient, published: Runtime, rclient: redis.Redis
) -> None:
    etag = web.get("/feeds/all.rss").headers["etag"]  # loads the cache
    statements: list[str] = []
    engine = get_engine(published.settings.effective_database_url)

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    rclient.config_resetstat()
    try:
        for _ in range(50):
            assert web.get("/feeds/all.rss", headers={"If-None-Match": etag}).status_code == 304
            assert web.get("/feeds/all.rss").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []
    stats = rclient.info("commandstats")
    assert "cmdstat_get" not in stats and "cmdstat_hgetall" not in stats


def test_a_new_render_is_served_once_the_interval_passed(
    web: TestClient, published: Runtime, clock: Clock, rclient: redis.Redis
) -> None:
    before = web.get("/feeds/all.json")
    push(published, 3)
    assert render_and_publish(published, "all", rclient)

    # Within the interval the version is not even read: the old render is still current here.
    assert web.get("/feeds/all.json").headers["etag"] == before.headers["etag"]
    clock.now += feedcache.REVALIDATE_SECONDS
    after = web.get("/feeds/all.json", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert json.loads(after.content)["items"][0]["title"] == "Story number 3"


def test_many_web_processes_follow_one_render(published: Runtime, rclient: redis.Redis) -> None:
    apps = [create_web_app(published) for _ in range(3)]
    clocks = [Clock() for _ in apps]
    for app, clock in zip(apps, clocks, strict=True):
        app.state.feed_cache = FeedCache(published, clock=clock)
    clients = [TestClient(app) for app in apps]
    first = {c.get("/feeds/all.atom").headers["etag"] for c in clients}
    push(published, 4)
    render_and_publish(published, "all", rclient)
    for clock in clocks:
        clock.now += 1
    second = {c.get("/feeds/all.atom").headers["etag"] for c in clients}
    assert len(first) == len(second) == 1 and first != second


def test_redis_down_falls_back_to_the_database(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime(redis_url="redis://127.0.0.1:1/0")
    push(runtime, 1)
    from worker.render import render_current

    assert render_current(runtime, "all")
    with TestClient(create_web_app(runtime)) as client:
        resp = client.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and b"Story number 1" in resp.content
    assert resp.headers["content-encoding"] == "gzip"


def test_renders_are_exported_with_their_encodings_and_dates(published: Runtime) -> None:
    directory = published.settings.effective_feed_dir
    renders = {r.fmt: r for r in feedcache.load_renders(published, "all")}
    for fmt, render in renders.items():
        path = directory / f"all.{fmt}"
        assert path.read_bytes() == render.body
        assert gzip.decompress((directory / f"all.{fmt}.gz").read_bytes()) == render.body
        assert path.stat().st_mtime == render.last_modified.timestamp()
        assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no temp file left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "all.rss"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["all.rss"]


def test_unknown_feed_never_reaches_redis(web: TestClient, rclient: redis.Redis) -> None:
    rclient.config_resetstat()
    for n in range(20):
        assert web.get(f"/feeds/nope{n}.rss").status_code == 404
    assert "cmdstat_get" not in rclient.info("commandstats")
