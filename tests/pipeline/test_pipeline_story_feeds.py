"""Merged feeds carry one entry per story: the main version, with every other version "also reported
by" in each format; the entry id never changes; per-source feeds stay one entry per article.

Stories are built here the way the store's assignment leaves them (a ``stories`` row, the articles'
``story_id`` and ``story_role``), on SQLite and PostgreSQL; the articles are real pushed and
processed ones.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import pytest
from lxml import etree
from sqlalchemy import select

from feeds.build import tag_authority
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article, retract_article
from worker.render import feeds_of_story, render_archive, render_current
from worker.store.models import Article, Story
from worker.store.queries import entry_id

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
SOURCES = [
    {"name": "cluj", "kind": "push", "url": "https://clujit.example/", "title": "Cluj IT Cluster"},
    {"name": "rawabi", "kind": "push", "url": "https://rawabi.example/", "title": "Rawabi Tech Hub"},
    {"name": "green", "kind": "push", "url": "https://green.example/", "title": "Green Partners"},
]
PARTNERSHIP = {
    "cluj": ("Cluj IT Cluster and Rawabi Tech Hub sign a partnership", "en"),
    "rawabi": ("تعاون بين مجمع روابي التقني وتجمع كلوج", "ar"),
    "green": ("Clusterul IT Cluj și Rawabi semnează un parteneriat", "ro"),
}


@pytest.fixture
def story_pipe(make_pipe):
    return make_pipe(
        {
            "sources": SOURCES,
            "feeds": [
                {"name": "all", "title": "All", "limit": 10, "language": "en"},
                {"name": "it", "title": "IT", "categories": ["IT"]},
                {"name": "energy", "title": "Energy", "categories": ["Energy"]},
                {"name": "cluj", "title": "Cluj only", "sources": ["cluj"]},
            ],
        }
    )


def push(pipe, n: int, source: str = "cluj", **fields: Any) -> int:
    """Push and process article ``n``; its id."""
    item = PushedArticle(
        url=fields.pop("url", f"https://{source}.example/news/{n}"),
        title=fields.pop("title", f"Story {n}"),
        content_html=fields.pop("content_html", f"<p>Story {n} tells of two clusters and more.</p>"),
        published=fields.pop("published", datetime(2024, 4, 1, 9, 0, tzinfo=UTC) + timedelta(hours=n)),
        source=source,
        **fields,
    )
    article_id, _ = ingest_article(pipe.rt, item)
    assert process_article(pipe.rt, article_id).status == "ready"
    return article_id


def push_partnership(pipe) -> dict[str, int]:
    """The three partner write-ups of the partnership (en, ar, ro), one per source."""
    return {
        source: push(pipe, n, source, title=title, language=language, category="Partnerships")
        for n, (source, (title, language)) in enumerate(PARTNERSHIP.items(), start=1)
    }


def make_story(pipe, main: int, *versions: int, founder: int | None = None) -> int:
    """A story of ``main`` and ``versions`` keyed like the one its founder (default: ``main``) founded."""
    with pipe.rt.session() as session:
        first = session.get(Article, founder or main)
        assert first is not None
        story = Story(
            title=first.title,
            first_published=first.published,
            entry_key=f"articles/{first.id}",
            entry_day=first.first_seen_at.astimezone(UTC).date(),
        )
        session.add(story)
        session.flush()
        story.created_at = story.updated_at
        for article_id in (main, *versions):
            article = session.get(Article, article_id)
            assert article is not None
            article.story_id, article.story_role = story.id, "main" if article_id == main else "version"
        return story.id


def join(pipe, story_id: int, article_id: int, *, main: bool = False, when: datetime | None = None) -> None:
    """``article_id`` joins the story (as its new main version if ``main``); the story's updated_at moves."""
    with pipe.rt.session() as session:
        story = session.get(Story, story_id)
        article = session.get(Article, article_id)
        assert story is not None and article is not None
        if main:
            for other in story.articles:
                other.story_role = "version"
        article.story_id, article.story_role = story_id, "main" if main else "version"
        story.updated_at = when or datetime.now(UTC)


def rendered(pipe, feed: str = "all") -> dict[str, bytes]:
    render_current(pipe.rt, feed)
    return {fmt: row.body for fmt, row in pipe.renders(feed).items()}


def json_items(pipe, feed: str = "all") -> list[dict[str, Any]]:
    return list(json.loads(rendered(pipe, feed)["json"])["items"])


def test_three_versions_make_one_entry_with_two_also_reported_by_in_every_format(story_pipe) -> None:
    ids = push_partnership(story_pipe)
    other = push(story_pipe, 9, "green", title="Green Partners open a lab")
    before = {i["title"]: i["id"] for i in json_items(story_pipe)}
    assert len(before) == 4
    story_id = make_story(story_pipe, ids["cluj"], ids["rawabi"], ids["green"])
    bodies = rendered(story_pipe)
    en_title = PARTNERSHIP["cluj"][0]

    items = json.loads(bodies["json"])["items"]
    assert [i["title"] for i in items] == ["Green Partners open a lab", en_title]
    entry = items[1]
    assert entry["id"] == before[en_title]  # the founder's entry id
    assert entry["url"] == "https://cluj.example/news/1"
    assert entry["_syndicate"]["story_id"] == story_id
    assert entry["_syndicate"]["source_name"] == "Cluj IT Cluster"
    assert entry["_syndicate"]["also_reported_by"] == [
        {
            "url": "https://rawabi.example/news/2",
            "title": PARTNERSHIP["rawabi"][0],
            "source": "Rawabi Tech Hub",
            "language": "ar",
        },
        {
            "url": "https://green.example/news/3",
            "title": PARTNERSHIP["green"][0],
            "source": "Green Partners",
            "language": "ro",
        },
    ]
    assert "also_reported_by" not in items[0].get("_syndicate", {})
    assert items[0]["id"] == before["Green Partners open a lab"] and other

    atom = feedparser.parse(bodies["atom"])
    assert atom.bozo == 0
    assert [e.id for e in atom.entries] == [items[0]["id"], entry["id"]]
    related = [(link.href, link.get("hreflang")) for link in atom.entries[1].links if link.rel == "related"]
    assert related == [("https://rawabi.example/news/2", "ar"), ("https://green.example/news/3", "ro")]
    assert not [link for link in atom.entries[0].links if link.rel == "related"]

    rss = etree.fromstring(bodies["rss"])
    story_item = rss.findall("channel/item")[1]
    assert story_item.findtext("guid") == entry["id"]
    links = story_item.findall(f"{ATOM}link")
    assert [(x.get("rel"), x.get("href"), x.get("hreflang")) for x in links] == [
        ("related", "https://rawabi.example/news/2", "ar"),
        ("related", "https://green.example/news/3", "ro"),
    ]
    assert links[0].get("title") == f"{PARTNERSHIP['rawabi'][0]} (Rawabi Tech Hub)"
    assert feedparser.parse(bodies["rss"]).bozo == 0

    # The HTML list, in every format's content, each other-language item marked.
    html_bodies = [story_item.findtext(CONTENT), atom.entries[1].content[0].value, entry["content_html"]]
    for body in html_bodies:
        assert body.startswith("<p>Story 1 tells of two clusters")
        lists = etree.HTML(body).findall(".//ul/li")
        assert [li.get("lang") for li in lists] == ["ar", "ro"]
        assert [li.find("a").get("href") for li in lists] == [
            "https://rawabi.example/news/2",
            "https://green.example/news/3",
        ]
        assert "Also reported by" in body and "(Green Partners)" in body


def test_a_story_of_one_version_is_the_article_entry_it_was(story_pipe) -> None:
    article_id = push(story_pipe, 1)
    before = rendered(story_pipe)
    make_story(story_pipe, article_id)
    after = rendered(story_pipe)
    # RSS and Atom byte for byte (the id first of all); JSON Feed only gains the story's id.
    assert after["rss"] == before["rss"] and after["atom"] == before["atom"]
    old, new = json.loads(before["json"])["items"][0], json.loads(after["json"])["items"][0]
    assert new.pop("_syndicate").pop("story_id") > 0
    old.pop("_syndicate")
    assert new == old


def test_the_entry_id_stays_when_a_version_joins_and_the_main_version_changes(story_pipe) -> None:
    ids = push_partnership(story_pipe)
    now = datetime.now(UTC)
    with story_pipe.rt.session() as session:  # pushed a day ago
        for article in session.scalars(select(Article)):
            article.changed_at = now - timedelta(days=1)
    story_id = make_story(story_pipe, ids["green"])
    # Not yet in a story, the other two are entries of their own.
    (first,) = [i for i in json_items(story_pipe) if i["title"] == PARTNERSHIP["green"][0]]
    (first_atom,) = [e for e in feedparser.parse(rendered(story_pipe)["atom"]).entries if e.id == first["id"]]

    join(story_pipe, story_id, ids["rawabi"], when=now - timedelta(hours=2))
    (second,) = [i for i in json_items(story_pipe) if i["title"] != PARTNERSHIP["cluj"][0]]
    assert second["id"] == first["id"]
    assert second["title"] == PARTNERSHIP["green"][0]
    assert [v["language"] for v in second["_syndicate"]["also_reported_by"]] == ["ar"]
    assert second["date_modified"] > first["date_modified"]

    # The preferred version arrives and becomes the main one: same id, its content, updated moves.
    join(story_pipe, story_id, ids["cluj"], main=True, when=now - timedelta(hours=1))
    (third,) = json_items(story_pipe)
    assert third["id"] == first["id"]
    assert third["title"] == PARTNERSHIP["cluj"][0]
    assert third["url"] == "https://cluj.example/news/1"
    assert [v["url"] for v in third["_syndicate"]["also_reported_by"]] == [
        "https://rawabi.example/news/2",
        "https://green.example/news/3",
    ]
    assert third["date_modified"] > second["date_modified"]
    atom = feedparser.parse(rendered(story_pipe)["atom"]).entries
    assert [e.id for e in atom] == [first_atom.id]
    assert atom[0].updated_parsed > first_atom.updated_parsed


def test_a_per_source_feed_keeps_one_entry_per_article(story_pipe) -> None:
    ids = [
        push(story_pipe, n, "cluj", title=title, language=language)
        for n, (title, language) in enumerate(PARTNERSHIP.values(), start=1)
    ]
    per_article = {i["url"]: i["id"] for i in json_items(story_pipe, "cluj")}
    make_story(story_pipe, ids[0], ids[1], ids[2])
    assert len(json_items(story_pipe, "all")) == 1
    items = json_items(story_pipe, "cluj")
    assert {i["url"]: i["id"] for i in items} == per_article
    assert len(items) == 3
    assert not [i for i in items if "also_reported_by" in i.get("_syndicate", {})]
    atom = feedparser.parse(rendered(story_pipe, "cluj")["atom"])
    assert len(atom.entries) == 3
    assert not [link for e in atom.entries for link in e.links if link.rel == "related"]


def test_a_category_feed_holds_a_story_any_of_whose_versions_it_selects(story_pipe) -> None:
    main = push(story_pipe, 1, "cluj", title="Partnership signed", category="Partnerships")
    it_version = push(story_pipe, 2, "rawabi", title="IT partnership, Rawabi's view", category="IT")
    lone_it = push(story_pipe, 3, "green", title="IT lab opens", category="IT")
    unrelated = push(story_pipe, 4, "green", title="Solar farm", category="Energy")
    story_id = make_story(story_pipe, main, it_version)
    unrelated_story = make_story(story_pipe, unrelated)

    items = json_items(story_pipe, "it")
    # The story shows its main version (not itself an IT article); the lone IT article as ever.
    assert [i["title"] for i in items] == ["IT lab opens", "Partnership signed"]
    assert [v["url"] for v in items[1]["_syndicate"]["also_reported_by"]] == ["https://rawabi.example/news/2"]
    assert [i["title"] for i in json_items(story_pipe, "energy")] == ["Solar farm"]
    assert [i["title"] for i in json_items(story_pipe, "all")] == [
        "Solar farm",
        "IT lab opens",
        "Partnership signed",
    ]

    # Which feeds a change of the story must re-render: the merged feeds that show it.
    assert feeds_of_story(story_pipe.rt, story_id) == ["all", "it"]
    assert feeds_of_story(story_pipe.rt, unrelated_story) == ["all", "energy"]
    # An edit of the IT version re-renders "it" and "all"; an edit of the main version too, though
    # the main version itself is no IT article: its entry in "it" shows it.
    item = PushedArticle(
        url="https://cluj.example/news/1",
        title="Partnership signed, corrected",
        content_html="<p>Corrected.</p>",
        category="Partnerships",
        source="cluj",
    )
    outcome = process_article(story_pipe.rt, ingest_article(story_pipe.rt, item)[0])
    assert outcome.changed and sorted(outcome.feeds) == ["all", "cluj", "it"]
    assert lone_it

    # Once its IT version is retracted, the story leaves "it"; retracting names the feeds to render.
    assert sorted(retract_article(story_pipe.rt, it_version)) == ["all", "it"]
    assert [i["title"] for i in json_items(story_pipe, "it")] == ["IT lab opens"]
    assert "also_reported_by" not in json_items(story_pipe, "all")[2]["_syndicate"]


def _walk(pipe, feed: str = "all") -> tuple[list[list[str]], list[str]]:
    """A reader walking a feed's archive: the entry ids of the current document, then of each page."""
    base = pipe.rt.settings.base_url
    doc = json.loads(rendered(pipe, feed)["json"])
    current = [i["id"] for i in doc["items"]]
    pages = []
    while doc.get("next_url"):
        page = int(doc["next_url"].rsplit("/", 1)[-1].removesuffix(".json"))
        assert doc["next_url"] == f"{base}/feeds/{feed}/archive/{page}.json"
        out = render_archive(pipe.rt, feed, page, "json")
        assert out is not None
        doc = json.loads(out.body)
        pages.append([i["id"] for i in doc["items"]])
    return pages, current


def test_archive_pages_hold_each_story_once_where_its_first_version_is(make_pipe) -> None:
    pipe = make_pipe(
        {
            "sources": SOURCES,
            "feeds": [{"name": "all", "title": "All", "limit": 3, "archive_page_size": 2}],
        }
    )
    ids = [push(pipe, n, ("cluj", "rawabi", "green")[n % 3]) for n in range(1, 10)]  # 9 articles
    authority = tag_authority(pipe.rt.settings.base_url)
    with pipe.rt.session() as session:
        entry = {n: entry_id(authority, session.get(Article, i)) for n, i in enumerate(ids, start=1)}
    pages, current = _walk(pipe)  # newest page first
    assert pages == [[entry[8], entry[7]], [entry[6], entry[5]], [entry[4], entry[3]], [entry[2], entry[1]]]
    assert current == [entry[9], entry[8], entry[7]]

    # Articles 1, 4 and 8 report one story (main: 8, founded by 1); 2 and 3 another (main: 2).
    first = make_story(pipe, ids[7], ids[0], ids[3], founder=ids[0])
    make_story(pipe, ids[1], ids[2])
    pages, current = _walk(pipe)
    # Pages keep their place: page 1 (articles 1 and 2) holds both stories, where their first
    # versions are; page 2 (3 and 4) nothing left; pages 3 and 4 their lone articles.
    assert pages == [[entry[7]], [entry[6], entry[5]], [], [entry[1], entry[2]]]
    assert current == [entry[9], entry[1], entry[7]]  # story one by its main version's date (8)
    page1 = json.loads(render_archive(pipe.rt, "all", 1, "json").body)["items"]  # type: ignore[union-attr]
    url = "https://{}.example/news/{}".format
    assert [i["url"] for i in page1] == [url("green", 8), url("green", 2)]  # the main versions
    assert page1[0]["_syndicate"]["story_id"] == first
    assert [v["url"] for v in page1[0]["_syndicate"]["also_reported_by"]] == [
        url("rawabi", 1),
        url("rawabi", 4),
    ]

    # A late version joining story one moves nothing between pages (its own page holds article 9).
    late = push(pipe, 10, "cluj")
    join(pipe, first, late)
    again, current = _walk(pipe)
    assert again == [[entry[9]], *pages]
    assert current == [entry[9], entry[1], entry[7]]
    story = json_items(pipe)[1]
    assert [v["url"] for v in story["_syndicate"]["also_reported_by"]][-1] == url("cluj", 10)
