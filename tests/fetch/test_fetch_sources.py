"""worker.fetch.sources: listing, sitemap, feed and page sources, on fixture sites."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import pytest

from config.model import SourceConfig
from tests.support.httpserver import SITES, HTTPTestServer, Response
from worker.errors import HTTPStatusError, TooLarge, TransientFetchError, UnsupportedContent
from worker.fetch import Discovered, Fetcher, discover, discover_from_document, parse_sitemap
from worker.fetch import sources as fetch_sources

BASE = "https://gazette.example"
GAZETTE = SITES / "gazette"
BUDGET = "/gazette/news/2024/05/03/city-council-approves-budget.html"
FLOOD = "/gazette/news/2024/05/02/flood-defences-get-green-light.html"
LIBRARY = "/gazette/news/2024/05/01/library-reopens-after-renovation.html"
TREES = "/gazette/news/2024/04/20/market-square-gets-new-trees.html"


def fixture(path: str, base: str = BASE) -> bytes:
    """A fixture file as the test server would serve it from ``base``."""
    data = (GAZETTE / path).read_bytes()
    if path.endswith(".gz"):
        return gzip.compress(gzip.decompress(data).replace(b"{{BASE_URL}}", base.encode()), mtime=0)
    return data.replace(b"{{BASE_URL}}", base.encode())


def source(kind: str, url: str, **options: Any) -> SourceConfig:
    return SourceConfig(name="gazette", kind=kind, url=url, options=options)  # type: ignore[arg-type]


def urls(found: list[Discovered], base: str = BASE) -> list[str]:
    return [d.url.removeprefix(base) for d in found]


def sent(server: HTTPTestServer) -> list[Any]:
    """The requests a crawl sent, robots.txt aside (the Fetcher asks for it on its own)."""
    return [r for r in server.requests if r.path != "/robots.txt"]


def listing(**options: Any) -> list[Discovered]:
    page = BASE + "/gazette/news/"
    return discover_from_document(
        source("listing", page, **options), fixture("news/index.html"), page, "text/html; charset=utf-8"
    )


# --- listing ------------------------------------------------------------------------------------


def test_listing_heuristic_finds_the_three_articles() -> None:
    found = listing()
    assert urls(found) == [BUDGET, FLOOD, LIBRARY]
    assert [d.title for d in found] == [
        "City council approves 2025 budget",
        "Flood defences get the green light",  # from the headline, not the image link before it
        "Library reopens after two-year renovation",
    ]
    assert all(d.published is None and d.html is None for d in found)


def test_listing_with_a_selector() -> None:
    assert urls(listing(link_selector="article h2 a, article h3 a")) == [BUDGET, FLOOD, LIBRARY]


def test_listing_selector_on_containers_takes_their_same_site_links() -> None:
    found = urls(listing(link_selector="article"))
    # Everything inside the cards that stays on the site, tag and author pages included: an
    # explicit selector is trusted; the share, mailto, javascript: and tel: links are not kept.
    assert found == [
        BUDGET,
        "/gazette/author/jane-doe/",
        "/gazette/category/local/",
        "/gazette/tag/budget/",
        "/gazette/tag/council/",
        FLOOD,
        LIBRARY,
    ]


def test_listing_with_a_pattern_searches_every_link() -> None:
    found = listing(link_pattern=r"/news/\d{4}/")
    assert urls(found) == [FLOOD, BUDGET, LIBRARY, TREES]
    assert found[0].title == "Featured: flood defences"


def test_listing_with_selector_and_pattern() -> None:
    assert urls(listing(link_selector="article", link_pattern=r"/05/0[12]/")) == [FLOOD, LIBRARY]


def test_a_pattern_may_admit_other_sites() -> None:
    found = listing(link_pattern=r"elsewhere\.example|/05/03/")
    assert [d.url for d in found] == [
        BASE + BUDGET,
        "https://elsewhere.example/2024/05/01/regional-roundup-of-the-week",
    ]


def test_listing_is_capped_by_max_articles() -> None:
    assert urls(listing(max_articles=2)) == [BUDGET, FLOOD]


def test_listing_without_content_sections_falls_back_to_all_links() -> None:
    page = b"""<html><body>
      <div class="menu"><a href="/world/2024/05/01/menu-story-not-wanted">x</a></div>
      <div class="stories">
        <a href="/world/2024/05/01/first-story">First</a>
        <a href="/world/">World</a>
        <a href="/world/98765">Second</a>
        <a href="/a-long-slug-without-any-date">Third</a>
        <a href="/world/page/2">Next</a>
        <a href="/images/photo-of-the-day-large.jpg">Photo</a>
      </div></body></html>"""
    found = discover_from_document(source("listing", BASE + "/world/"), page, BASE + "/world/", None)
    assert urls(found) == ["/world/2024/05/01/first-story", "/world/98765", "/a-long-slug-without-any-date"]


def test_listing_honours_base_href_and_www() -> None:
    page = b"""<html><head><base href="https://www.gazette.example/archive/"></head><body><main>
      <h2><a href="2024/05/01/relative-to-the-base-href">A</a></h2>
      <h2><a href="https://blog.gazette.example/2024/05/02/subdomain-story-here">B</a></h2>
      <h2><a href="https://gazette.example.evil.test/2024/05/03/lookalike-host-story">C</a></h2>
    </main></body></html>"""
    found = discover_from_document(source("listing", BASE + "/"), page, BASE + "/", None)
    assert [d.url for d in found] == [
        "https://www.gazette.example/archive/2024/05/01/relative-to-the-base-href",
        "https://blog.gazette.example/2024/05/02/subdomain-story-here",
    ]


def test_an_invalid_selector_is_reported() -> None:
    with pytest.raises(ValueError, match="link_selector"):
        listing(link_selector="article >>> a[")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/news/2024/05/03/council-budget.html", True),
        ("/2024-05-03-council-budget", True),
        ("/news/article-123456", True),
        ("/news/council-approves-budget", True),
        ("/opinion/why-trees-matter-more", True),
        ("/", False),
        ("/news/", False),
        ("/news/2024/", False),
        ("/news/2024/05/", False),
        ("/tag/budget-and-council-news", False),
        ("/category/local/", False),
        ("/author/jane-doe-the-reporter/", False),
        ("/news/page/2/", False),
        ("/news/?page=2", False),
        ("/about-us/", False),
        ("/privacy-policy/", False),
        ("/news/hello", False),
        ("/archives/2024/05/", False),
        ("/archives/12345", True),
        ("/img/a-photo-of-the-council.jpg", False),
        ("/feeds/all-the-news.xml", False),
    ],
)
def test_article_path_heuristic(path: str, expected: bool) -> None:
    assert fetch_sources._looks_like_article(BASE + path) is expected


# --- sitemaps -----------------------------------------------------------------------------------


def test_gzipped_urlset_newest_first_same_site_only() -> None:
    url = BASE + "/gazette/sitemaps/news-2024-05.xml.gz"
    found = discover_from_document(source("sitemap", url), fixture("sitemaps/news-2024-05.xml.gz"), url, None)
    assert urls(found) == [BUDGET, FLOOD, LIBRARY]
    assert [d.published for d in found] == [
        datetime(2024, 5, 3, 18, 30, tzinfo=UTC),  # news:publication_date wins over lastmod
        datetime(2024, 5, 2, tzinfo=UTC),
        datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
    ]
    assert found[0].title == "City council approves 2025 budget"


def test_sitemap_index_lists_children_newest_first() -> None:
    parsed = parse_sitemap(fixture("sitemap_index.xml"), BASE + "/gazette/sitemap_index.xml")
    assert parsed.entries == ()
    assert parsed.children == (
        "https://cdn.elsewhere.example/gazette-sitemap.xml",
        BASE + "/gazette/sitemaps/news-2024-05.xml.gz",
        BASE + "/gazette/sitemaps/pages.xml",
        BASE + "/gazette/sitemaps/retired.xml",
    )


def test_sitemap_without_namespace_and_as_text() -> None:
    xml = b"<urlset><url><loc>/a/relative-entry-story</loc><lastmod>bad date</lastmod></url></urlset>"
    assert parse_sitemap(xml, BASE + "/s.xml").entries == (Discovered(BASE + "/a/relative-entry-story"),)
    text = b"https://gazette.example/one-story\n\n  https://gazette.example/two-story  \nnot a url\n"
    assert [d.url for d in parse_sitemap(text, BASE + "/s.txt").entries] == [
        BASE + "/one-story",
        BASE + "/two-story",
    ]


def test_sitemap_does_not_expand_external_entities() -> None:
    xml = b"""<?xml version="1.0"?>
    <!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
    <urlset><url><loc>https://gazette.example/&xxe;</loc></url></urlset>"""
    entries = parse_sitemap(xml, BASE + "/s.xml").entries
    assert all("root:" not in d.url for d in entries)


def test_not_a_sitemap() -> None:
    with pytest.raises(UnsupportedContent):
        parse_sitemap(b"<html><body>Oops</body></html>", BASE + "/s.xml")
    with pytest.raises(UnsupportedContent):
        parse_sitemap(b"\x1f\x8bnot really gzip", BASE + "/s.xml.gz")


def test_gzip_bomb_sitemap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_sources, "MAX_SITEMAP_BYTES", 100_000)
    bomb = gzip.compress(b"<urlset>" + b" " * 1_000_000 + b"</urlset>")
    with pytest.raises(TooLarge):
        parse_sitemap(bomb, BASE + "/s.xml.gz")


# --- feeds --------------------------------------------------------------------------------------


def test_rss_feed_with_content_encoded() -> None:
    url = BASE + "/gazette/feeds/rss.xml"
    found = discover_from_document(source("feed", url), fixture("feeds/rss.xml"), url, "application/rss+xml")
    assert urls(found) == [BUDGET, FLOOD + "?utm_source=rss", LIBRARY]
    assert [d.published for d in found] == [
        datetime(2024, 5, 3, 18, 30, tzinfo=UTC),
        datetime(2024, 5, 2, 9, 15, tzinfo=UTC),
        datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
    ]
    assert found[0].html == (
        "<p>The city council approved next year's budget by <strong>seven votes to two</strong>.</p>"
    )
    assert found[1].html is None  # only a description: not the full article
    assert found[2].html is not None and "<script" not in found[2].html


def test_atom_feed_with_html_and_xhtml_content() -> None:
    url = BASE + "/gazette/feeds/atom.xml"
    body = fixture("feeds/atom.xml")
    found = discover_from_document(source("feed", url), body, url, "application/atom+xml")
    assert urls(found) == [BUDGET, FLOOD, LIBRARY]
    assert found[0].title == "City council approves 2025 budget"
    assert found[0].published == datetime(2024, 5, 3, 18, 30, tzinfo=UTC)
    assert found[1].published == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)  # from <updated>
    assert found[0].html == "<p>The city council approved next year's budget.</p>"
    assert found[1].html is None
    assert found[2].html is not None and "opened its doors again" in found[2].html


def test_json_feed() -> None:
    url = BASE + "/gazette/feeds/feed.json"
    body = fixture("feeds/feed.json")
    found = discover_from_document(source("feed", url), body, url, "application/feed+json")
    assert urls(found) == [BUDGET, FLOOD]
    assert found[0].html == "<p>The city council approved next year's budget.</p>"
    assert found[1].html is None
    assert found[1].published == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)


def test_feed_links_from_other_sites_are_kept_unless_a_pattern_filters() -> None:
    rss = b"""<rss version="2.0"><channel><title>t</title>
      <item><title>A</title><link>https://partner-cdn.example/story-a</link></item>
      <item><title>B</title><link>javascript:alert(1)</link></item>
      <item><title>C</title><link>https://gazette.example/story-c</link></item>
    </channel></rss>"""
    url = BASE + "/feed"
    assert [d.url for d in discover_from_document(source("feed", url), rss, url, None)] == [
        "https://partner-cdn.example/story-a",
        "https://gazette.example/story-c",
    ]
    only_ours = source("feed", url, link_pattern=r"^https://gazette\.example/")
    assert [d.url for d in discover_from_document(only_ours, rss, url, None)] == [
        "https://gazette.example/story-c"
    ]


def test_not_a_feed() -> None:
    url = BASE + "/feed"
    with pytest.raises(UnsupportedContent):
        discover_from_document(source("feed", url), b"this is not a feed", url, "text/plain")
    with pytest.raises(UnsupportedContent):
        discover_from_document(source("feed", url), b'{"no": "items"}', url, "application/json")


def test_page_is_the_source_url() -> None:
    page = source("page", "https://gazette.example/gazette/about-the-town#history")
    assert discover_from_document(page, b"", page.url, None) == [
        Discovered("https://gazette.example/gazette/about-the-town")
    ]


# --- discover() against the real server ---------------------------------------------------------


def test_discover_listing(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    found = discover(source("listing", http_server.url("/gazette/news/")), fetcher)
    assert urls(found, http_server.base_url) == [BUDGET, FLOOD, LIBRARY]


def test_guessed_next_links_stay_on_the_listing(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    """Without rel=next, a pager's or a "Next" link is followed only to a page of this listing, same host."""
    story = '<main><h2><a href="/blog/2024/05/03/council-approves-the-budget.html">Budget</a></h2></main>'
    elsewhere = f"http://localhost:{http_server.port}/blog/page/2/"  # another host name for the same server
    http_server.content(
        "/blog/",
        f"<html><body>{story}<a href='/about-us/'>Next</a>"
        f"<a class='next page-numbers' href='{elsewhere}'>Next</a>"
        "<a href='/blog/?page=2'>Older posts &raquo;</a></body></html>".encode(),
    )
    http_server.content(
        "/blog/?page=2",
        b"<html><body><main><h2><a href='/blog/2024/05/01/a-second-page-story.html'>Two</a></h2></main>"
        b"</body></html>",
    )
    found = discover(source("listing", http_server.url("/blog/")), fetcher)
    assert urls(found, http_server.base_url) == [
        "/blog/2024/05/03/council-approves-the-budget.html",
        "/blog/2024/05/01/a-second-page-story.html",
    ]
    assert [r.path for r in sent(http_server)] == ["/blog/", "/blog/?page=2"]


def test_discover_listing_after_a_redirect(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.redirect("/latest", "/gazette/news/")
    found = discover(source("listing", http_server.url("/latest")), fetcher)
    assert urls(found, http_server.base_url) == [BUDGET, FLOOD, LIBRARY]


def test_discover_sitemap_index_follows_children(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    found = discover(source("sitemap", http_server.url("/gazette/sitemap_index.xml")), fetcher)
    assert urls(found, http_server.base_url) == [BUDGET, FLOOD, LIBRARY, TREES, "/gazette/about-us/"]
    fetched = [r.path for r in sent(http_server)]
    # Newest child first; the other site's child is skipped; the missing one is tolerated.
    assert fetched == [
        "/gazette/sitemap_index.xml",
        "/gazette/sitemaps/news-2024-05.xml.gz",
        "/gazette/sitemaps/pages.xml",
        "/gazette/sitemaps/retired.xml",
    ]
    assert sent(http_server)[0].header("Accept") == fetch_sources.SITEMAP_ACCEPT


def test_discover_sitemap_with_pattern_and_cap(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    index = http_server.url("/gazette/sitemap_index.xml")
    config = source("sitemap", index, link_pattern="/news/", max_articles=2)
    assert urls(discover(config, fetcher), http_server.base_url) == [BUDGET, FLOOD]


def test_discover_sitemap_child_bound(
    http_server: HTTPTestServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_sources, "MAX_CHILD_SITEMAPS", 1)
    found = discover(source("sitemap", http_server.url("/gazette/sitemap_index.xml")), fetcher)
    assert urls(found, http_server.base_url) == [BUDGET, FLOOD, LIBRARY]
    assert len(sent(http_server)) == 2


def test_discover_sitemap_whose_children_all_fail(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    http_server.status("/gazette/sitemaps/news-2024-05.xml.gz", 503, headers={"Retry-After": "30"})
    http_server.status("/gazette/sitemaps/pages.xml", 404)
    with pytest.raises(TransientFetchError) as info:
        discover(source("sitemap", http_server.url("/gazette/sitemap_index.xml")), fetcher)
    assert info.value.retry_after == 30


def test_discover_sitemap_nested_index_loops_are_cut(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    index = (
        b"<sitemapindex><sitemap><loc>/loop.xml</loc></sitemap>"
        b"<sitemap><loc>/gazette/sitemaps/pages.xml</loc></sitemap></sitemapindex>"
    )
    http_server.content("/loop.xml", index, "application/xml")
    found = discover(source("sitemap", http_server.url("/loop.xml")), fetcher)
    assert urls(found, http_server.base_url) == [TREES, "/gazette/about-us/"]
    assert [r.path for r in sent(http_server)] == ["/loop.xml", "/gazette/sitemaps/pages.xml"]


@pytest.mark.parametrize("path", ["/gazette/feeds/rss.xml", "/gazette/feeds/atom.xml"])
def test_discover_feeds(http_server: HTTPTestServer, fetcher: Fetcher, path: str) -> None:
    found = discover(source("feed", http_server.url(path)), fetcher)
    assert [u.split("?")[0] for u in urls(found, http_server.base_url)] == [BUDGET, FLOOD, LIBRARY]
    assert found[0].html is not None
    assert sent(http_server)[0].header("Accept") == fetch_sources.FEED_ACCEPT


def test_discover_json_feed(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    found = discover(source("feed", http_server.url("/gazette/feeds/feed.json")), fetcher)
    assert urls(found, http_server.base_url) == [BUDGET, FLOOD]


def test_discover_page_fetches_nothing(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    found = discover(source("page", http_server.url(BUDGET)), fetcher)
    assert found == [Discovered(http_server.url(BUDGET))]
    assert http_server.requests == []


def test_discover_propagates_fetch_errors(http_server: HTTPTestServer, fetcher: Fetcher) -> None:
    with pytest.raises(HTTPStatusError):
        discover(source("feed", http_server.url("/gazette/feeds/missing.xml")), fetcher)
    http_server.route("/feed-image", Response(200, b"GIF89a", {"Content-Type": "image/gif"}))
    with pytest.raises(UnsupportedContent):
        discover(source("feed", http_server.url("/feed-image")), fetcher)


def test_feed_entities_are_not_expanded() -> None:
    """A DOCTYPE's entities (billion laughs, an external file) never reach the parsed entries."""
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    body = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">'
        + laughs
        + '<!ENTITY file SYSTEM "file:///etc/passwd">]>'
        '<rss version="2.0"><channel><title>t</title><link>https://gazette.example/</link><description>d</description>'
        "<item><title>Story &l9; &file;</title><link>https://gazette.example/gazette/news/2024/05/03/a-story-here.html</link>"
        "</item></channel></rss>"
    ).encode()
    feed = source("feed", "https://gazette.example/feed.xml")
    [entry] = discover_from_document(feed, body, feed.url, "application/rss+xml")
    assert entry.url.endswith("/a-story-here.html")
    assert "lol" not in (entry.title or "") and "root:" not in (entry.title or "")
