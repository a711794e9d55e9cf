"""Every source kind through the crawl and process stages, against a real site on 127.0.0.1 whose
request log the tests read: conditional re-crawls (304, nothing parsed, no article fetched again),
pagination, the first crawl's backfill cap, sitemap indexes and news sitemaps whose ``lastmod``
decides what is fetched again, feeds whose links are fetched for the full text, an edited article
updated in place, a listing that serves a PDF, and what the status shows. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.pipeline.conftest import Pipe
from tests.pipeline.sitegen import NewsSite, Story
from tests.support.httpserver import HTTPTestServer, Response
from worker.crawl import run_crawl
from worker.ops.status import snapshot


@pytest.fixture
def news() -> Iterator[NewsSite]:
    """A site of six stories, two per listing page (three pages), newest first."""
    with HTTPTestServer(root=None) as server:
        site = NewsSite(server)
        for n in range(6, 0, -1):
            site.add(Story(f"story-number-{n}", f"Story number {n} about the town"))
        yield site


def config(news: NewsSite, **source: Any) -> dict[str, Any]:
    """A config with one source on the news site."""
    return {
        "fetch": {"allow_hosts": [news.server.host_port], "timeout": "5s"},
        "sources": [{"name": "town", "kind": "listing", "url": news.server.url("/news/"), **source}],
        "feeds": [{"name": "all", "title": "All"}],
    }


def paths(news: NewsSite) -> list[str]:
    """The paths requested so far, in order (robots.txt aside: the Fetcher's own); and forget them."""
    requested = [r.path for r in news.server.requests if r.path != "/robots.txt"]
    news.server.requests.clear()
    return requested


def test_listing_pagination_then_only_new_stories(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(config(news))
    ids = pipe.crawl("town")
    pipe.process(ids)
    assert len(ids) == 6
    assert paths(news)[:3] == ["/news/", "/news/page/2/", "/news/page/3/"]
    assert all(a.backfill and a.status == "ready" for a in pipe.articles().values())

    # Nothing changed: one conditional request, a 304, nothing parsed and no article refetched.
    assert pipe.crawl("town") == []
    requests = [r for r in news.server.requests if r.path != "/robots.txt"]
    assert [r.path for r in requests] == ["/news/"] and requests[0].header("If-None-Match")
    paths(news)

    # A new story: page 1 changed and holds known links, so page 2 is not fetched.
    fresh = news.add(Story("a-brand-new-story", "A brand new story about the bridge"))
    new_ids = pipe.crawl("town")
    assert paths(news) == ["/news/"]
    assert [pipe.article(i).url for i in new_ids] == [news.server.url(fresh.path)]
    assert not pipe.article(new_ids[0]).backfill  # news, not back catalogue: it will be shared
    pipe.process(new_ids)
    assert paths(news) == [fresh.path]


def test_first_crawl_takes_at_most_backfill(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(config(news, backfill=3))
    ids = pipe.crawl("town")
    assert len(ids) == 3
    # Two pages hold four links: enough; page 3 is never asked for.
    assert paths(news) == ["/news/", "/news/page/2/"]
    statuses = sorted(a.status for a in pipe.articles().values())
    assert statuses == ["pending", "pending", "pending", "skipped"]
    skipped = next(a for a in pipe.articles().values() if a.status == "skipped")
    assert "backfill of 3" in (skipped.error or "")
    pipe.process(ids)

    # The one beyond the cap is not news on the next crawl either; the new story is.
    fresh = news.add(Story("another-new-story", "Another new story about the harbour"))
    later = pipe.crawl("town")
    assert [pipe.article(i).url for i in later] == [news.server.url(fresh.path)]


@pytest.fixture
def wordpress() -> Iterator[NewsSite]:
    """A WordPress category page: three stories, one per page, linked by paginate_links() (no rel=next)."""
    with HTTPTestServer(root=None) as server:
        site = NewsSite(server, per_page=1, pagination="wordpress")
        for n in range(3, 0, -1):
            site.add(Story(f"partner-story-number-{n}", f"Partner story number {n} about the valley"))
        yield site


@pytest.mark.parametrize("style", ["wordpress", "older-posts"])
def test_a_listing_without_options_follows_the_common_next_page_links(
    wordpress: NewsSite, make_pipe: Callable[..., Pipe], style: str
) -> None:
    """Issue 16: a listing source without options found 1 of its 3 stories."""
    wordpress.pagination = style
    pipe = make_pipe(config(wordpress))
    ids = pipe.crawl("town")
    assert sorted(pipe.article(i).url.rsplit("/", 1)[1] for i in ids) == [
        f"partner-story-number-{n}.html" for n in (1, 2, 3)
    ]
    assert paths(wordpress) == ["/news/", "/news/page/2/", "/news/page/3/"]


def test_listing_pagination_stops_at_max_pages(wordpress: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    pipe = make_pipe(config(wordpress, options={"max_pages": 2}))
    assert len(pipe.crawl("town")) == 2
    assert paths(wordpress) == ["/news/", "/news/page/2/"]


def test_a_next_link_back_to_the_first_page_ends_the_walk(
    wordpress: NewsSite, make_pipe: Callable[..., Pipe]
) -> None:
    wordpress.loop = True  # page 3's "Next" leads to page 1
    pipe = make_pipe(config(wordpress))
    assert len(pipe.crawl("town")) == 3
    assert paths(wordpress) == ["/news/", "/news/page/2/", "/news/page/3/"]


def test_followed_pages_obey_robots_txt(wordpress: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    wordpress.server.route(
        "/robots.txt",
        Response(200, b"User-agent: *\nDisallow: /news/page/3/\n", {"Content-Type": "text/plain"}),
    )
    pipe = make_pipe(config(wordpress))
    assert len(pipe.crawl("town")) == 2
    assert paths(wordpress) == ["/news/", "/news/page/2/"]


def test_include_exclude_and_start_urls(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    news.extra["/sport/"] = (
        b'<html><body><main><h2><a href="/news/story-number-9.html">Nine</a></h2></main></body></html>',
        "text/html",
    )
    news.add(Story("story-number-9", "Story number 9 about the match"))
    options = {"start_urls": [news.server.url("/sport/")], "exclude": ["number-[24]"], "max_pages": 1}
    pipe = make_pipe(config(news, options=options))
    urls = {pipe.article(i).url.rsplit("/", 1)[1] for i in pipe.crawl("town")}
    # max_pages 1: page 1 only (stories 9 and 1); number-2/4 would be excluded anyway.
    assert urls == {"story-number-9.html", "story-number-1.html"}
    assert "/news/page/2/" not in paths(news)


def test_listing_serving_a_pdf_is_a_failed_crawl(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    news.server.route("/news/", Response(200, b"%PDF-1.7 ...", {"Content-Type": "application/pdf"}))
    pipe = make_pipe(config(news))
    report = run_crawl(pipe.rt, pipe.source_id("town"))
    assert report.failed and "application/pdf" in (report.error or "")
    assert pipe.articles() == {}
    source = pipe.source("town")
    assert source.last_success_at is None and "UnsupportedContent" in (source.last_error or "")


def test_a_listing_answering_json_is_not_zero_links(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    news.server.route("/news/", Response(200, b'{"items": []}', {"Content-Type": "application/json"}))
    pipe = make_pipe(config(news))
    report = run_crawl(pipe.rt, pipe.source_id("town"))
    assert report.failed and "HTML" in (report.error or "")


def test_sitemap_index_news_sitemap_and_lastmod_refetch(
    news: NewsSite, make_pipe: Callable[..., Pipe]
) -> None:
    base = news.server.base_url
    old, edited = news.stories[-1], news.stories[0]

    def index() -> bytes:
        return (
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{base}/news-sitemap.xml</loc><lastmod>{edited.lastmod}</lastmod></sitemap>"
            f"<sitemap><loc>{base}/old-sitemap.xml</loc><lastmod>2024-01-01</lastmod></sitemap>"
            "</sitemapindex>"
        ).encode()

    def news_sitemap() -> bytes:
        entries = "".join(
            f"<url><loc>{base}{s.path}</loc><lastmod>{s.lastmod}</lastmod><news:news>"
            "<news:publication><news:name>Town</news:name><news:language>en</news:language>"
            f"</news:publication><news:publication_date>2024-05-03T08:00:00Z</news:publication_date>"
            f"<news:title>{s.title}</news:title></news:news></url>"
            for s in news.stories[:-1]
        )
        return (
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{entries}</urlset>'
        ).encode()

    def old_sitemap() -> bytes:
        return (
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{base}{old.path}</loc><lastmod>2024-01-01</lastmod></url></urlset>"
        ).encode()

    def refresh() -> None:
        news.extra.update(
            {
                "/sitemap_index.xml": (index(), "application/xml"),
                "/news-sitemap.xml": (news_sitemap(), "application/xml"),
                "/old-sitemap.xml": (old_sitemap(), "application/xml"),
            }
        )
        news.install()

    refresh()
    cfg = config(news)
    cfg["sources"] = [{"name": "town", "kind": "sitemap", "url": news.server.url("/sitemap_index.xml")}]
    pipe = make_pipe(cfg)
    ids = pipe.crawl("town")
    assert len(ids) == 6
    pipe.process(ids)
    assert paths(news)[:3] == ["/sitemap_index.xml", "/news-sitemap.xml", "/old-sitemap.xml"]
    before = pipe.article(news.server.url(edited.path))

    # Unchanged: the index answers 304, nothing else is asked for.
    assert pipe.crawl("town") == []
    assert paths(news) == ["/sitemap_index.xml"]

    # The partner edits one story: its lastmod (and its child's in the index) moves on.
    edited.title = "Story number 6 about the town, corrected"
    edited.lastmod = "2024-05-04T09:00:00+00:00"
    refresh()
    again = pipe.crawl("town")
    # The old child's lastmod did not change: not even a conditional request for it.
    assert paths(news) == ["/sitemap_index.xml", "/news-sitemap.xml"]
    assert again == [before.id]
    outcome = pipe.process(again)[0]
    assert paths(news) == [edited.path]
    assert outcome.changed and not outcome.share  # updated in place, not shared again
    after = pipe.article(before.id)
    assert after.title == "Story number 6 about the town, corrected"
    assert len(pipe.articles()) == 6


def test_sitemap_found_from_robots(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    news.extra["/robots.txt"] = (
        f"User-agent: *\nAllow: /\nSitemap: {news.server.base_url}/sitemap.xml\n".encode(),
        "text/plain",
    )
    news.install()
    cfg = config(news)
    cfg["sources"] = [{"name": "town", "kind": "sitemap", "url": news.server.url("/")}]
    pipe = make_pipe(cfg)
    assert len(pipe.crawl("town")) == 6
    assert "/sitemap.xml" in paths(news)


def test_feed_links_are_fetched_for_the_full_text(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    news.stories[0].published = None  # this page has no date: the feed's pubDate is kept
    cfg = config(news)
    cfg["sources"] = [{"name": "town", "kind": "feed", "url": news.server.url("/feed.rss")}]
    pipe = make_pipe(cfg)
    ids = pipe.crawl("town")
    assert paths(news) == ["/feed.rss"]
    pipe.process(ids)
    assert sorted(paths(news)) == sorted(s.path for s in news.stories)
    undated = pipe.article(news.server.url(news.stories[0].path))
    assert undated.status == "ready" and "Paragraph 5 of the report" in (undated.text or "")
    assert undated.published is not None and undated.published.isoformat() == "2024-05-03T08:00:00+00:00"

    # Re-crawl: the feed answers 304; no page is fetched again.
    assert pipe.crawl("town") == []
    assert paths(news) == ["/feed.rss"]


def test_page_source_is_watched_for_changes(news: NewsSite, make_pipe: Callable[..., Pipe]) -> None:
    story = news.stories[0]
    cfg = config(news)
    cfg["sources"] = [{"name": "town", "kind": "page", "url": news.server.url(story.path)}]
    pipe = make_pipe(cfg)
    [article_id] = pipe.crawl_and_process("town")
    paths(news)
    # Unchanged: a conditional GET answered 304, nothing parsed or changed.
    again = pipe.crawl("town")
    assert again == [article_id]
    assert pipe.process(again)[0].changed is False
    conditional = [
        r.header("If-None-Match") is not None for r in news.server.requests if "robots" not in r.path
    ]
    assert conditional == [True]
    paths(news)
    story.title = "The watched page, now updated"
    outcome = pipe.process(pipe.crawl("town"))[0]
    assert outcome.changed and not outcome.share
    assert pipe.article(article_id).title == "The watched page, now updated"
    assert len(pipe.articles()) == 1


def test_status_shows_a_failing_source_and_skipped_articles(
    news: NewsSite, make_pipe: Callable[..., Pipe]
) -> None:
    pipe = make_pipe(config(news, backfill=1))
    pipe.crawl("town")
    news.server.status("/news/", 503, headers={"Retry-After": "7200"})
    assert run_crawl(pipe.rt, pipe.source_id("town"), force=True).failed
    with pipe.rt.session() as session:
        snap = snapshot(session, pipe.rt.config, "http://x")
    town = next(s for s in snap["sources"] if s["name"] == "town")
    assert town["state"] == "backing off"
    assert "HTTP 503" in town["last_error"]
    assert town["failing_since"] is not None and town["consecutive_errors"] == 1
    assert town["next_crawl_at"] > town["failing_since"]  # Retry-After: two hours
    assert town["skipped"] == 1 and "backfill" in town["skipped_recent"][0]["reason"]
    assert snap["articles"]["skipped"] == 1
