"""The render stage: stored RSS/Atom/JSON renders that parse cleanly, stay byte-stable while nothing
changes, and hold exactly the articles their source, category and tag filters select."""

from __future__ import annotations

import json
import time
from typing import Any

import feedparser
import pytest

from tests.support.httpserver import HTTPTestServer
from worker.pipeline import render_feed

SOLAR = "Solar cluster opens a shared test lab"
FARM = "Farm cooperative launches a seed exchange"
ROBOTICS = "Robotics camp for girls returns"
HARBOUR = "Harbour software upgrade finished"
CONTENT_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


@pytest.fixture
def feeds_pipe(site_config, make_pipe):
    """Both sources crawled and processed, with feeds filtered by source, category, tag and limit."""
    config = site_config
    config["feeds"] = [
        {"name": "all", "title": "All partner news"},
        {"name": "valley-only", "title": "Valley", "sources": ["valley"]},
        {"name": "it", "title": "IT Systems", "categories": ["IT SYSTEMS"]},
        {"name": "energy", "title": "Energy", "tags": ["energy"]},
        {"name": "valley-it", "title": "Valley IT", "sources": ["valley"], "categories": ["it systems"]},
        {"name": "newest", "title": "Newest", "limit": 1},
        {"name": "nothing", "title": "Nothing yet", "categories": ["Astronomy"]},
    ]
    pipe = make_pipe(config)
    pipe.crawl_and_process("valley", "harbour")
    assert sum(a.status == "ready" for a in pipe.articles().values()) == 4
    return pipe


def parse(body: bytes, fmt: str) -> dict[str, Any]:
    """A render parsed back: feedparser (bozo must be 0) for RSS/Atom, JSON Feed 1.1 checks for JSON."""
    if fmt == "json":
        doc = json.loads(body)
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        assert all(item["id"] and item["url"] and item["title"] for item in doc["items"])
        return {
            "title": doc["title"],
            "titles": [i["title"] for i in doc["items"]],
            "links": [i["url"] for i in doc["items"]],
        }
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, (fmt, parsed.get("bozo_exception"))
    assert parsed.version.startswith(fmt), parsed.version
    return {
        "title": parsed.feed.title,
        "titles": [e.title for e in parsed.entries],
        "links": [e.link for e in parsed.entries],
    }


def _titles(pipe, feed: str, fmt: str = "rss") -> list[str]:
    return parse(pipe.renders(feed)[fmt].body, fmt)["titles"]


def test_render_stores_three_formats_that_parse(feeds_pipe, site: HTTPTestServer) -> None:
    assert render_feed(feeds_pipe.rt, "all") is True
    renders = feeds_pipe.renders("all")

    assert set(renders) == {"rss", "atom", "json"}
    for fmt, row in renders.items():
        assert row.content_type.startswith(CONTENT_TYPES[fmt]), row.content_type
        assert row.etag and row.item_count == 4
        parsed = parse(row.body, fmt)
        assert parsed["title"] == "All partner news"
        # Newest first, by published date.
        assert parsed["titles"] == [ROBOTICS, FARM, HARBOUR, SOLAR], fmt
        assert set(parsed["links"]) == {
            site.url("/news/solar-cluster.html"),
            site.url("/news/farm-cooperative.html"),
            site.url("/news/robotics-camp.html"),
            site.url("/other/harbour-report.html"),
        }
        assert "Share this article" not in row.body.decode()
    assert b"http://feeds.example.test/feeds/all.atom" in renders["atom"].body


def test_rerender_without_changes_keeps_etag_and_last_modified(feeds_pipe, site: HTTPTestServer) -> None:
    assert render_feed(feeds_pipe.rt, "all") is True
    first = feeds_pipe.renders("all")
    time.sleep(0.02)

    assert render_feed(feeds_pipe.rt, "all") is False
    second = feeds_pipe.renders("all")
    for fmt in first:
        assert second[fmt].etag == first[fmt].etag
        assert second[fmt].last_modified == first[fmt].last_modified
        assert second[fmt].rendered_at == first[fmt].rendered_at
        assert second[fmt].body == first[fmt].body

    # Re-processing unchanged pages does not change the feed either.
    feeds_pipe.process(list(a.id for a in feeds_pipe.articles().values()))
    assert render_feed(feeds_pipe.rt, "all") is False

    # A real change to an article does: new ETag, later Last-Modified.
    page = (site.root / "news" / "farm-cooperative.html").read_bytes()  # type: ignore[operator]
    site.content(
        "/news/farm-cooperative.html",
        page.replace(
            b"seed exchange</h1>",
            b"seed exchange</h1>"
            b"<p>Update: the exchange now also opens on Wednesdays"
            b" for members who work on Saturdays.</p>",
        ),
    )
    outcome = feeds_pipe.process([feeds_pipe.article(site.url("/news/farm-cooperative.html")).id])[0]
    assert outcome.changed and "all" in outcome.feeds and not outcome.share
    assert render_feed(feeds_pipe.rt, "all") is True
    third = feeds_pipe.renders("all")
    for fmt in first:
        assert third[fmt].etag != first[fmt].etag
        assert third[fmt].last_modified > first[fmt].last_modified
    assert b"also opens on Wednesdays" in third["atom"].body


def test_unknown_feed_is_skipped(feeds_pipe) -> None:
    assert render_feed(feeds_pipe.rt, "no-such-feed") is False
    assert feeds_pipe.renders("no-such-feed") == {}


def test_empty_feed_renders_valid_documents(feeds_pipe) -> None:
    assert render_feed(feeds_pipe.rt, "nothing") is True
    for fmt in ("rss", "atom", "json"):
        row = feeds_pipe.renders("nothing")[fmt]
        assert parse(row.body, fmt)["titles"] == [] and row.item_count == 0


@pytest.mark.parametrize(
    ("feed", "expected"),
    [
        ("valley-only", {SOLAR, FARM, ROBOTICS}),
        ("it", {SOLAR, HARBOUR}),  # "IT Systems" and "it systems" both match "IT SYSTEMS"
        ("energy", {SOLAR, ROBOTICS}),  # tags "Energy" and "ENERGY" match "energy"
        ("valley-it", {SOLAR}),
        ("newest", {ROBOTICS}),
    ],
)
def test_feed_filters_select_matching_articles(feeds_pipe, feed: str, expected: set[str]) -> None:
    assert render_feed(feeds_pipe.rt, feed) is True
    for fmt in ("rss", "atom", "json"):
        titles = _titles(feeds_pipe, feed, fmt)
        assert set(titles) == expected, (feed, fmt)
        assert len(titles) == len(expected)
    assert feeds_pipe.renders(feed)["rss"].item_count == len(expected)


def test_failed_and_duplicate_articles_stay_out_of_feeds(site: HTTPTestServer, make_pipe) -> None:
    config = {
        "fetch": {"allow_hosts": [site.host_port]},
        "sources": [
            {
                "name": "dupes",
                "kind": "listing",
                "url": site.url("/dupes/"),
                "options": {"link_selector": "a.post-link"},
            },
            {"name": "gone", "kind": "page", "url": site.url("/bad/missing.html")},
        ],
        "feeds": [{"name": "all", "title": "All"}],
    }
    pipe = make_pipe(config)
    pipe.crawl_and_process("dupes", "gone")
    assert sorted(a.status for a in pipe.articles().values()) == ["duplicate", "failed", "ready"]
    render_feed(pipe.rt, "all")
    assert _titles(pipe, "all", "atom") == ["The river festival moves to September"]
