"""Every format through the readers' and validators' eyes, on normal and hostile items.

RSS and Atom go through feedparser (``bozo == 0``) and the vendored W3C Feed Validator at level AA
(0 errors, 0 warnings); JSON Feed is checked against the 1.1 spec's required fields. The hostile
table: ``]]>``, control characters, RTL overrides, emoji, 100 KB and 3 MB bodies, a 2099 date,
tracking parameters and XSS in every field must give valid feeds with nothing executable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from feeds.build import FeedItem, FeedMeta, RelatedVersion, RenderedFeed, render_all
from feeds.content import READ_MORE

VALIDATOR = Path(__file__).resolve().parents[3] / "shared" / "peers" / "feedvalidator" / "validate.py"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
META = FeedMeta(
    name="all",
    title="Hostile " + XSS,
    home_url="https://feeds.example.org/",
    self_url_base="https://feeds.example.org/feeds/all",
    description="Everything " + XSS,
    hub_url="https://hub.example.org/",
    now=NOW,
    stylesheet_url="https://feeds.example.org/feeds.xsl",
    prev_archive="https://feeds.example.org/feeds/all/archive/3",
)
PARAGRAPH = "<p>" + "Un paragraf lung cu diacritice ăâîșț și emoji 🎉. " * 20 + "</p>"


def _item(n: int, **fields: Any) -> FeedItem:
    base: dict[str, Any] = {
        "id": f"tag:feeds.example.org,2024-05-01:articles/{n}",
        "url": f"https://partner.example/news/{n}",
        "title": f"Story {n}",
        "summary": "A summary.",
        "content_html": "<p>Body.</p>",
        "published": datetime(2024, 5, 1, 9, n % 60, tzinfo=UTC),
        "source_name": "Partner",
        "source_url": "https://partner.example/",
        "source_id": "https://partner.example/",
    }
    base.update(fields)
    return FeedItem(**base)


HOSTILE: dict[str, FeedItem] = {
    "cdata-end": _item(1, title="Ends ]]> here", content_html="<p>a ]]> b</p>", summary="x ]]> y"),
    "controls": _item(2, title="Bell\x07 null\x00 esc\x1b del\x7f c1\x85 end", authors=("A\x0bB",)),
    "rtl-override": _item(3, title="invoice\u202egnp.exe \u2066isolate\u2069", categories=("\u202eevil",)),
    "emoji": _item(4, title="Party 🎉👩🏽‍🚀 time", content_html="<p>🎉 🇷🇴</p>"),
    "100kb": _item(5, content_html=PARAGRAPH * 90),
    "3mb": _item(6, content_html=PARAGRAPH * 2600),
    "future": _item(7, published=datetime(2099, 1, 1, tzinfo=UTC), updated=datetime(2099, 1, 2, tzinfo=UTC)),
    "tracking": _item(8, url="https://partner.example/news/8?utm_source=x&fbclid=y"),
    "xss": _item(
        9,
        title=XSS,
        summary=XSS,
        content_html=XSS + "<p onclick='alert(4)' style='x'>ok</p><iframe src='https://evil'></iframe>",
        authors=(XSS,),
        categories=(XSS,),
        image="javascript:alert(5)",
        source_name=XSS,
    ),
    "entities": _item(10, title="AT&T & <b>bold</b> <3 &amp;", summary="Tom & Jerry <3"),
    "figure": _item(
        11,
        content_html='<figure><img src="https://partner.example/p.jpg" alt="Two people sign a paper">'
        "<figcaption>Signing in Cluj. Photo: Green Partners</figcaption></figure><p>Body.</p>",
    ),
}
EXECUTABLE = ("<script", "onerror", "onclick", "javascript:", "<iframe")


@pytest.fixture(scope="module")
def hostile() -> dict[str, RenderedFeed]:
    return render_all(META, list(HOSTILE.values()))


def validate(feed: RenderedFeed, tmp_path: Path, base: str | None = None) -> str:
    """The W3C validator's messages for ``feed`` at AA ("" when there are none)."""
    path = tmp_path / f"feed.{feed.format}"
    path.write_bytes(feed.body)
    env = {**os.environ, "FEED_BASE": f"{base or META.self_url_base}.{feed.format}"}
    result = subprocess.run(
        [sys.executable, str(VALIDATOR), str(path), "AA"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert "feedType" in out, out
    return "" if result.returncode == 0 and "No errors or warnings" in out else out


def _bodies(feed: RenderedFeed) -> list[str]:
    """Every item body of a render, as the HTML a reader would display."""
    if feed.format == "json":
        return [i.get("content_html", "") for i in json.loads(feed.body)["items"]]
    return [e.content[0].value for e in feedparser.parse(feed.body).entries]


@pytest.mark.skipif(not VALIDATOR.exists(), reason="the vendored W3C validator is not checked out")
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_hostile_feeds_pass_the_w3c_validator(
    hostile: dict[str, RenderedFeed], fmt: str, tmp_path: Path
) -> None:
    assert validate(hostile[fmt], tmp_path) == ""


@pytest.mark.skipif(not VALIDATOR.exists(), reason="the vendored W3C validator is not checked out")
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_archive_page_passes_the_w3c_validator(fmt: str, tmp_path: Path) -> None:
    from dataclasses import replace

    page = replace(
        META,
        self_url_base="https://feeds.example.org/feeds/all/archive/2",
        current="https://feeds.example.org/feeds/all",
        prev_archive="https://feeds.example.org/feeds/all/archive/1",
        next_archive="https://feeds.example.org/feeds/all/archive/3",
    )
    feed = render_all(page, [_item(n) for n in range(3)])[fmt]
    assert validate(feed, tmp_path, page.self_url_base) == ""
    assert b"<fh:archive/>" in feed.body


# A story of three versions: the English main version, a Romanian and an Arabic one.
STORY = _item(
    20,
    title="Cluj IT Cluster and Rawabi Tech Hub sign a partnership",
    language="en",
    story_id=7,
    related=(
        RelatedVersion(
            url="https://green.example/stiri/parteneriat?utm_source=x&id=3",
            title="Clusterul IT Cluj și Rawabi semnează un parteneriat & <mai mult>",
            source_name="Green Partners",
            language="ro",
        ),
        RelatedVersion(
            url="https://rawabi.example/ar/news/2",
            title="تعاون بين مجمع روابي التقني وتجمع كلوج",
            source_name="مجمع روابي التقني",
            language="ar",
        ),
    ),
)


@pytest.mark.skipif(not VALIDATOR.exists(), reason="the vendored W3C validator is not checked out")
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_a_story_with_related_versions_passes_the_w3c_validator(fmt: str, tmp_path: Path) -> None:
    feed = render_all(META, [STORY, _item(21)])[fmt]
    assert validate(feed, tmp_path) == ""
    entry = feedparser.parse(feed.body).entries[0]
    related = [(x.href, x.hreflang, x.title) for x in entry.links if x.rel == "related"]
    assert related == [
        (
            "https://green.example/stiri/parteneriat?utm_source=x&id=3",
            "ro",
            "Clusterul IT Cluj și Rawabi semnează un parteneriat & <mai mult> (Green Partners)",
        ),
        (
            "https://rawabi.example/ar/news/2",
            "ar",
            "تعاون بين مجمع روابي التقني وتجمع كلوج (مجمع روابي التقني)",
        ),
    ]
    body = entry.content[0].value
    assert '<li dir="auto" lang="ro">' in body and '<li dir="auto" lang="ar">' in body
    assert "&lt;mai mult&gt;" in body


def test_a_story_in_json_feed_carries_its_versions_in_the_syndicate_extension() -> None:
    doc = json.loads(render_all(META, [STORY])["json"].body)
    (item,) = doc["items"]
    assert item["_syndicate"] == {
        "source_name": "Partner",
        "source_url": "https://partner.example/",
        "story_id": 7,
        "also_reported_by": [
            {
                "url": "https://green.example/stiri/parteneriat?utm_source=x&id=3",
                "title": "Clusterul IT Cluj și Rawabi semnează un parteneriat & <mai mult>",
                "source": "Green Partners",
                "language": "ro",
            },
            {
                "url": "https://rawabi.example/ar/news/2",
                "title": "تعاون بين مجمع روابي التقني وتجمع كلوج",
                "source": "مجمع روابي التقني",
                "language": "ar",
            },
        ],
    }
    assert item["content_html"].startswith("<p>Body.</p><p>Also reported by:</p><ul>")


def test_related_versions_are_cleaned_like_everything_else() -> None:
    hostile = _item(
        22,
        related=(
            RelatedVersion(url="javascript:alert(1)", title="x", source_name="y"),
            RelatedVersion(url="https://ok.example/a", title=XSS, source_name=XSS, language='ro" onclick="x'),
            RelatedVersion(url="https://ok.example/a", title="the same link again"),
        ),
    )
    for fmt, feed in render_all(META, [hostile]).items():
        raw = feed.body.decode()
        assert "javascript:" not in raw and "onclick" not in raw and "onerror" not in raw, fmt
        assert raw.count("https://ok.example/a") == 2, fmt  # the list in the body, and the link
        assert "the same link again" not in raw and "hreflang" not in raw, fmt


def test_a_story_over_the_feed_budget_keeps_its_also_reported_by_list() -> None:
    big = PARAGRAPH * 80  # about 90 KB: within the item budget, two of them spend the feed's
    items = [
        replace(STORY, id=f"tag:feeds.example.org,2024-05-01:articles/{n}", content_html=big)
        for n in range(3)
    ]
    for fmt, feed in render_all(replace(META, max_feed_bytes=150_000), items).items():
        last = _bodies(feed)[-1]
        assert READ_MORE in last and len(last) < 3000, fmt  # an excerpt: the budget was spent
        assert last.endswith("(مجمع روابي التقني)</li></ul>"), fmt


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_hostile_feeds_parse_cleanly(hostile: dict[str, RenderedFeed], fmt: str) -> None:
    parsed = feedparser.parse(hostile[fmt].body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == len(HOSTILE)
    titles = [e.title for e in parsed.entries]
    assert titles[0] == "Ends ]]> here"
    assert titles[1] == "Bell null esc del c1 end"
    assert titles[2] == "invoicegnp.exe isolate"
    assert titles[3] == "Party 🎉👩🏽‍🚀 time"
    assert titles[9] == "AT&T & bold <3 &amp;"
    links = {rel: link for rel, link in ((x.rel, x.href) for x in parsed.feed.links)}
    assert links["hub"] == META.hub_url
    assert links["prev-archive"] == f"{META.prev_archive}.{fmt}"
    assert hostile[fmt].body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet")


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_nothing_executable_in_any_format(hostile: dict[str, RenderedFeed], fmt: str) -> None:
    feed = hostile[fmt]
    if fmt == "json":
        doc = json.loads(feed.body)
        texts = [doc["title"], doc["description"]]
        for item in doc["items"]:
            texts += [item["title"], item.get("summary", ""), item.get("content_html", "")]
            texts += [a["name"] for a in item.get("authors", [])] + item.get("tags", [])
            texts += [item.get("_syndicate", {}).get("source_name", ""), item.get("image", "")]
        # The summary is plain text: no markup at all (a literal "<3" is text, not a tag).
        assert not any(re.search(r"<[a-z/!?]", i.get("summary", ""), re.I) for i in doc["items"])
    else:
        parsed = feedparser.parse(feed.body)
        texts = [parsed.feed.title]
        for entry in parsed.entries:
            texts += [entry.title, entry.summary, entry.content[0].value]
            texts += [a.get("name", "") for a in entry.get("authors", [])]
            texts += [t.term for t in entry.get("tags", [])]
    for text in texts:
        assert not any(bad in text.lower() for bad in EXECUTABLE), text
    # Not even in the raw bytes, where a less careful reader might look.
    raw = feed.body.decode("utf-8").lower()
    assert "javascript:" not in raw and "onerror" not in raw


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_budgets_cut_long_bodies_at_a_block_with_a_link(hostile: dict[str, RenderedFeed], fmt: str) -> None:
    bodies = _bodies(hostile[fmt])
    for n in (4, 5):  # the 100 KB and the 3 MB body
        body = bodies[n]
        assert len(body.encode()) <= META.max_item_bytes + 500
        assert body.endswith(f'<p><a href="https://partner.example/news/{n + 1}">{READ_MORE}</a></p>')
        # Whole paragraphs only.
        assert body.count("<p>") == body.count("</p>")
    assert len(hostile[fmt].body) < 2 * META.max_feed_bytes


def test_fifteen_huge_articles_stay_within_the_feed_budget() -> None:
    items = [_item(n, content_html=PARAGRAPH * 2400) for n in range(15)]  # 15 x about 2.8 MB
    rendered = render_all(META, items)
    for fmt, feed in rendered.items():
        assert len(feed.body) < META.max_feed_bytes + 100_000, fmt
        assert len(_bodies(feed)) == 15, fmt
        assert all(READ_MORE in body for body in _bodies(feed)), fmt


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_a_2099_item_does_not_pin_the_feed_date(hostile: dict[str, RenderedFeed], fmt: str) -> None:
    feed = hostile[fmt]
    assert feed.last_modified == NOW
    if fmt == "json":
        item = json.loads(feed.body)["items"][6]
        assert item["date_published"] == item["date_modified"] == "2024-06-01T12:00:00Z"
    else:
        parsed = feedparser.parse(feed.body)
        assert parsed.feed.updated_parsed == NOW.utctimetuple()
        assert parsed.entries[6].published_parsed == NOW.utctimetuple()


def test_json_feed_has_the_spec_required_fields(hostile: dict[str, RenderedFeed]) -> None:
    doc = json.loads(hostile["json"].body)
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and doc["title"]
    assert doc["next_url"] == f"{META.prev_archive}.json"
    ids = [item["id"] for item in doc["items"]]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    for item in doc["items"]:
        assert "content_html" in item or "content_text" in item
        for attachment in item.get("attachments", []):
            assert attachment["url"].startswith("https://") and "/" in attachment["mime_type"]
        for key in item:
            assert key in JSON_ITEM_KEYS or key.startswith("_"), key
    assert "image" not in doc["items"][8]  # javascript: is not an image URL


JSON_ITEM_KEYS = {
    "id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
    "banner_image", "date_published", "date_modified", "authors", "tags", "language", "attachments",
}  # fmt: skip


def test_xml_feeds_are_well_formed_with_declared_namespaces(hostile: dict[str, RenderedFeed]) -> None:
    for fmt in ("rss", "atom"):
        root = etree.fromstring(hostile[fmt].body)
        assert "ns0" not in hostile[fmt].body.decode()
        assert root.getprevious() is not None  # the xml-stylesheet instruction
