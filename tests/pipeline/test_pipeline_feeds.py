"""The render stage: stored RSS/Atom/JSON renders that parse cleanly, stay byte-stable while nothing
changes, and hold exactly the articles their source, category and tag filters select."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import pytest

from tests.support.httpserver import HTTPTestServer
from worker.ingest import PushedArticle, ingest_article
from worker.normalize.urls import normalize_url
from worker.process import process_article, retract_article
from worker.render import render_archive, render_current

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
    assert render_current(feeds_pipe.rt, "all") is True
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
    assert render_current(feeds_pipe.rt, "all") is True
    first = feeds_pipe.renders("all")
    time.sleep(0.02)

    assert render_current(feeds_pipe.rt, "all") is False
    second = feeds_pipe.renders("all")
    for fmt in first:
        assert second[fmt].etag == first[fmt].etag
        assert second[fmt].last_modified == first[fmt].last_modified
        assert second[fmt].rendered_at == first[fmt].rendered_at
        assert second[fmt].body == first[fmt].body

    # Re-processing unchanged pages does not change the feed either.
    feeds_pipe.process(list(a.id for a in feeds_pipe.articles().values()))
    assert render_current(feeds_pipe.rt, "all") is False

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
    assert render_current(feeds_pipe.rt, "all") is True
    third = feeds_pipe.renders("all")
    for fmt in first:
        assert third[fmt].etag != first[fmt].etag
        assert third[fmt].last_modified > first[fmt].last_modified
    assert b"also opens on Wednesdays" in third["atom"].body


def test_unknown_feed_is_skipped(feeds_pipe) -> None:
    assert render_current(feeds_pipe.rt, "no-such-feed") is False
    assert feeds_pipe.renders("no-such-feed") == {}


def test_empty_feed_renders_valid_documents(feeds_pipe) -> None:
    assert render_current(feeds_pipe.rt, "nothing") is True
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
    assert render_current(feeds_pipe.rt, feed) is True
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
    render_current(pipe.rt, "all")
    assert _titles(pipe, "all", "atom") == ["The river festival moves to September"]


# ---------------------------------------------------------------- entries, archives (issue 8)

PUBLIC_HOST_TAG = re.compile(r"^tag:[a-z0-9.-]+,\d{4}-\d{2}-\d{2}:articles/\d+$")


def _push(pipe, n: int, **fields: Any) -> int:
    item = PushedArticle(
        url=fields.pop("url", f"https://partner.example/news/{n}"),
        title=fields.pop("title", f"Pushed story {n}"),
        content_html=fields.pop(
            "content_html", f"<p>Pushed story {n} tells of a partnership between two clusters and more.</p>"
        ),
        published=fields.pop("published", datetime(2024, 4, 1, 9, 0, tzinfo=UTC) + timedelta(hours=n)),
        **fields,
    )
    article_id, _ = ingest_article(pipe.rt, item)
    assert process_article(pipe.rt, article_id).status == "ready"
    return article_id


@pytest.fixture
def push_pipe(make_pipe):
    return make_pipe({"feeds": [{"name": "all", "title": "All", "limit": 3, "archive_page_size": 2}]})


def _json(pipe, feed: str = "all") -> dict[str, Any]:
    return json.loads(pipe.renders(feed)["json"].body)


def test_entry_ids_are_tag_uris_that_survive_edits_and_new_canonical_links(push_pipe) -> None:
    _push(push_pipe, 1)
    render_current(push_pipe.rt, "all")
    first = _json(push_pipe)["items"][0]
    assert PUBLIC_HOST_TAG.match(first["id"]), first["id"]
    atom = feedparser.parse(push_pipe.renders("all")["atom"].body)
    assert atom.entries[0].id == first["id"]

    # Edited: same id, new title and date_modified, still one entry.
    _push(push_pipe, 1, title="Pushed story 1, corrected")
    assert render_current(push_pipe.rt, "all") is True
    items = _json(push_pipe)["items"]
    assert [(i["id"], i["title"]) for i in items] == [(first["id"], "Pushed story 1, corrected")]


def test_tracking_parameters_do_not_make_a_second_entry(push_pipe) -> None:
    _push(push_pipe, 1)
    _push(push_pipe, 1, url="https://partner.example/news/1?utm_source=x&utm_medium=y&fbclid=z&gclid=1")
    render_current(push_pipe.rt, "all")
    items = _json(push_pipe)["items"]
    assert [i["url"] for i in items] == ["https://partner.example/news/1"]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://a.example/x?utm_source=s&id=7&_ga=1#top", "https://a.example/x?id=7"),
        ("https://a.example/x?mc_cid=1&mc_eid=2&igshid=3", "https://a.example/x"),
        ("https://a.example/x?page=2&UTM_Campaign=c&q=a%20b", "https://a.example/x?page=2&q=a%20b"),
        ("  https://a.example/x?ref=home  ", "https://a.example/x?ref=home"),
    ],
)
def test_normalize_url_strips_tracking_parameters(url: str, key: str) -> None:
    assert normalize_url(url) == key


def test_a_future_date_neither_stays_on_top_nor_pins_the_feed(push_pipe) -> None:
    _push(push_pipe, 1)
    _push(push_pipe, 2, published=datetime(2099, 1, 1, tzinfo=UTC))
    render_current(push_pipe.rt, "all")
    rss = feedparser.parse(push_pipe.renders("all")["rss"].body)
    assert rss.bozo == 0
    assert rss.feed.updated_parsed.tm_year < 2099
    assert all(e.published_parsed.tm_year < 2099 for e in rss.entries)
    # Rendering again later gives the same bytes: the clamp uses stored facts, not the clock.
    assert render_current(push_pipe.rt, "all") is False


def test_a_retracted_article_leaves_every_feed(push_pipe) -> None:
    keep, gone = _push(push_pipe, 1), _push(push_pipe, 2)
    render_current(push_pipe.rt, "all")
    assert len(_json(push_pipe)["items"]) == 2
    assert retract_article(push_pipe.rt, gone) == ["all"]
    assert render_current(push_pipe.rt, "all") is True
    assert [i["title"] for i in _json(push_pipe)["items"]] == ["Pushed story 1"]
    assert keep != gone


def test_source_attribution_uses_the_display_name(site_config, make_pipe, site: HTTPTestServer) -> None:
    site_config["sources"][0]["title"] = "Valley Cluster News"
    site_config["feeds"] = [{"name": "all", "title": "All"}]
    pipe = make_pipe(site_config)
    pipe.crawl_and_process("valley", "harbour")
    render_current(pipe.rt, "all")
    names = {i.get("_syndicate", {}).get("source_name") for i in _json(pipe)["items"]}
    assert names == {"Valley Cluster News", "harbour"}
    atom = feedparser.parse(pipe.renders("all")["atom"].body)
    assert {e.source.title for e in atom.entries} == {"Valley Cluster News", "harbour"}


def _fetch(pipe, url: str) -> bytes:
    """GET a feed or archive URL the way a reader would, from the stored render or the archive route."""
    base = pipe.rt.settings.base_url
    path = url.removeprefix(base)
    if "/archive/" not in path:
        name, fmt = path.removeprefix("/feeds/").rsplit(".", 1)
        return pipe.renders(name)[fmt].body
    name, rest = path.removeprefix("/feeds/").split("/archive/")
    page, fmt = rest.rsplit(".", 1)
    out = render_archive(pipe.rt, name, int(page), fmt)
    assert out is not None, url
    return out.body


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_a_reader_walks_the_archive_to_the_end(push_pipe, fmt: str) -> None:
    ids = [_push(push_pipe, n) for n in range(1, 8)]  # 7 articles, limit 3, pages of 2
    retract_article(push_pipe.rt, ids[2])  # a hole in page 2, not a shift
    render_current(push_pipe.rt, "all")
    url = f"{push_pipe.rt.settings.base_url}/feeds/all.{fmt}"
    seen: list[str] = []
    visited = []
    while url:
        parsed = feedparser.parse(_fetch(push_pipe, url))
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        visited.append(url)
        seen += [e.title for e in parsed.entries]
        links = {link.rel: link.href for link in parsed.feed.get("links", [])}
        if len(visited) > 1:
            assert links["current"] == f"{push_pipe.rt.settings.base_url}/feeds/all.{fmt}"
        url = links.get("prev-archive", "")
        assert len(visited) < 10
    assert [u.rsplit("/", 1)[-1] for u in visited] == [f"all.{fmt}", f"3.{fmt}", f"2.{fmt}", f"1.{fmt}"]
    assert set(seen) == {f"Pushed story {n}" for n in (1, 2, 4, 5, 6, 7)}
    # Pages link forward too, and a page that is not full yet is not served.
    page1 = feedparser.parse(_fetch(push_pipe, f"{push_pipe.rt.settings.base_url}/feeds/all/archive/1.{fmt}"))
    assert {link.rel: link.href for link in page1.feed.links}["next-archive"].endswith(f"/archive/2.{fmt}")
    assert render_archive(push_pipe.rt, "all", 4, fmt) is None
    assert render_archive(push_pipe.rt, "all", 0, fmt) is None


def test_json_feed_pages_to_older_items_with_next_url(push_pipe) -> None:
    for n in range(1, 6):
        _push(push_pipe, n)
    render_current(push_pipe.rt, "all")
    doc = _json(push_pipe)
    titles = [i["title"] for i in doc["items"]]
    while doc.get("next_url"):
        doc = json.loads(_fetch(push_pipe, doc["next_url"]))
        titles += [i["title"] for i in doc["items"]]
    assert set(titles) == {f"Pushed story {n}" for n in range(1, 6)}


def test_archive_pages_are_byte_stable(push_pipe) -> None:
    for n in range(1, 5):
        _push(push_pipe, n)
    before = render_archive(push_pipe.rt, "all", 1, "atom")
    for n in range(5, 8):
        _push(push_pipe, n)
    after = render_archive(push_pipe.rt, "all", 1, "atom")
    assert before is not None and after is not None
    # A full page never changes: same bytes, same ETag, however many articles come after it.
    assert before.body == after.body and before.etag == after.etag
    assert len(feedparser.parse(before.body).entries) == 2


def test_archive_count_and_slices_match_the_full_id_list(make_pipe) -> None:
    """The render reads a count and the ids after the last full page, not every id ever stored; what it
    reads must be what the full list says, for a feed SQL filters alone and for one with a tag filter."""
    from worker.store.queries import archive_count, archive_ids, archive_page_size, archive_slice

    pipe = make_pipe(
        {
            "sources": [{"name": "partner", "kind": "push"}],
            "feeds": [
                {"name": "all", "title": "All", "limit": 3, "archive_page_size": 2},
                {
                    "name": "partner",
                    "title": "Partner",
                    "limit": 3,
                    "archive_page_size": 2,
                    "sources": ["partner"],
                },
                {"name": "tagged", "title": "Tagged", "limit": 3, "archive_page_size": 2, "tags": ["Cluj"]},
            ],
        }
    )
    ids = [_push(pipe, n, tags=["Cluj"] if n % 2 else ["Rawabi"]) for n in range(9)]
    other = _push(pipe, 9, source="partner")  # the only article of the source-filtered feed
    ids.append(other)
    retract_article(pipe.rt, ids[4])  # a retracted article keeps its place (a hole, not a shift)
    feeds = {f.name: f for f in pipe.rt.config.feeds}
    with pipe.rt.session() as session:
        full = {name: archive_ids(session, feed) for name, feed in feeds.items()}
        assert full["all"] == ids  # the retracted one included
        assert full["partner"] == [other]
        assert full["tagged"] == [ids[n] for n in range(9) if n % 2]
        for name, feed in feeds.items():
            assert archive_count(session, feed) == len(full[name])
            size = archive_page_size(feed)
            for start in range(0, len(full[name]) + 2):
                assert archive_slice(session, feed, start) == full[name][start:], (name, start)
                assert archive_slice(session, feed, start, start + size) == full[name][start : start + size]
