"""Tests for feeds.build: RSS/Atom parse cleanly and round-trip, JSON Feed is valid, output is stable."""

from __future__ import annotations

import calendar
import dataclasses
import json
import locale
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from feeds.build import (
    CONTENT_TYPES,
    EPOCH,
    FORMATS,
    JSON_FEED_VERSION,
    FeedItem,
    FeedMeta,
    RenderedFeed,
    build_feed,
    clean_text,
    feed_updated,
    render_all,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
ATOM = "{http://www.w3.org/2005/Atom}"
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
LONG_TITLE = "Un titlu foarte lung cu diacritice ăâîșț " * 250


def _load(name: str) -> tuple[FeedMeta, list[FeedItem]]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    meta = FeedMeta(**data["meta"])
    items = []
    for raw in data["items"]:
        fields: dict[str, Any] = dict(raw)
        for key in ("published", "updated"):
            if key in fields:
                fields[key] = datetime.fromisoformat(fields[key])
        for key in ("authors", "categories"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if fields.get("title") == "LONG_TITLE":
            fields["title"] = LONG_TITLE
        items.append(FeedItem(**fields))
    return meta, items


@pytest.fixture(scope="module")
def sample() -> tuple[FeedMeta, list[FeedItem]]:
    return _load("items.json")


@pytest.fixture(scope="module")
def hostile() -> tuple[FeedMeta, list[FeedItem]]:
    return _load("hostile.json")


@pytest.fixture(scope="module")
def rendered(sample: tuple[FeedMeta, list[FeedItem]]) -> dict[str, RenderedFeed]:
    return render_all(*sample)


def _parse(feed: RenderedFeed) -> Any:
    parsed = feedparser.parse(feed.body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def _struct(dt: datetime) -> Any:
    return dt.utctimetuple()


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_xml_feeds_parse_without_errors(rendered: dict[str, RenderedFeed], fmt: str) -> None:
    parsed = _parse(rendered[fmt])
    assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
    assert len(parsed.entries) == 3


def test_render_all_returns_every_format_with_content_type(rendered: dict[str, RenderedFeed]) -> None:
    assert tuple(rendered) == FORMATS
    for fmt, feed in rendered.items():
        assert feed.format == fmt
        assert feed.content_type == CONTENT_TYPES[fmt]
        assert re.fullmatch(r'"[0-9a-f]{32}"', feed.etag)
        assert feed.body.startswith(b"{" if fmt == "json" else b"<?xml")


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feed_level_fields_round_trip(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    parsed = _parse(build_feed(meta, items, fmt))
    assert parsed.feed.title == meta.title
    assert parsed.feed.link == meta.home_url
    assert parsed.feed.language == "ro"
    # Newest item date (the first item's `updated`, 11:00+03:00) is the feed date.
    assert parsed.feed.updated_parsed == _struct(datetime(2024, 5, 2, 8, 0, tzinfo=UTC))
    if fmt == "atom":
        assert parsed.feed.subtitle == meta.description
    else:
        assert parsed.feed.description == meta.description


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_items_round_trip(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    parsed = _parse(build_feed(meta, items, fmt))
    for item, entry in zip(items, parsed.entries, strict=True):
        assert entry.title == item.title
        assert entry.link == item.url
        assert entry.id == item.id
        assert entry.published_parsed == _struct(item.published)  # type: ignore[arg-type]
        assert [a.name for a in entry.get("authors", [])] == list(item.authors)
        assert [t.term for t in entry.get("tags", [])] == list(item.categories)
        if item.content_html:
            # The lead image (if any) is put at the top of the body; the body itself is unchanged.
            assert entry.content[0].value.endswith(item.content_html)
            assert entry.content[0].type == "text/html"
            assert (item.image is not None) == ("<img" in entry.content[0].value)


def test_atom_updated_falls_back_to_published(sample: tuple[FeedMeta, list[FeedItem]]) -> None:
    meta, items = sample
    entries = _parse(build_feed(meta, items, "atom")).entries
    assert entries[0].updated_parsed == _struct(items[0].updated)  # type: ignore[arg-type]
    assert entries[1].updated_parsed == _struct(items[1].published)  # type: ignore[arg-type]


def test_summary_is_plain_text_escaped_as_html(sample: tuple[FeedMeta, list[FeedItem]]) -> None:
    meta, items = sample
    for fmt in ("rss", "atom"):
        entry = _parse(build_feed(meta, items, fmt)).entries[2]
        # The plain-text "<3" must not become markup: it survives as escaped text.
        assert entry.summary == "Tom &amp; Jerry &lt;3 sport"
    doc = json.loads(build_feed(meta, items, "json").body)
    assert doc["items"][2]["summary"] == "Tom & Jerry <3 sport"


def test_rss_guid_is_permalink_only_when_id_is_the_url(rendered: dict[str, RenderedFeed]) -> None:
    root = etree.fromstring(rendered["rss"].body)
    guids = root.findall("channel/item/guid")
    assert [g.get("isPermaLink") for g in guids] == ["true", "true", "false"]


def test_rss_has_content_encoded_creator_and_media(rendered: dict[str, RenderedFeed]) -> None:
    root = etree.fromstring(rendered["rss"].body)
    item = root.find("channel/item")
    assert item is not None
    ns = {
        "content": "http://purl.org/rss/1.0/modules/content/",
        "dc": "http://purl.org/dc/elements/1.1/",
        "media": "http://search.yahoo.com/mrss/",
    }
    assert item.findtext("content:encoded", namespaces=ns).startswith(
        '<p><img src="https://cdn.example.ro/img/buget.jpg?w=800" alt=""></p><p>Executivul'
    )
    assert [e.text for e in item.findall("dc:creator", ns)] == ["Ana Popescu", "Ștefan Țurcanu"]
    media = item.find("media:content", ns)
    assert media is not None
    assert media.get("url") == "https://cdn.example.ro/img/buget.jpg?w=800"
    assert media.get("medium") == "image"
    assert media.get("type") == "image/jpeg"
    parsed = _parse(rendered["rss"])
    assert parsed.entries[0].media_content[0]["url"] == "https://cdn.example.ro/img/buget.jpg?w=800"


def test_atom_source_is_complete(rendered: dict[str, RenderedFeed]) -> None:
    root = etree.fromstring(rendered["atom"].body)
    entries = root.findall(f"{ATOM}entry")
    titles = [e.findtext(f"{ATOM}source/{ATOM}title") for e in entries]
    assert titles == ["Știri Partener", "Arabic Partner", None]
    source = entries[0].find(f"{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}id") == "https://partner.example.ro/"
    assert source.findtext(f"{ATOM}updated") == "2024-05-02T08:00:00Z"
    assert source.find(f"{ATOM}link").get("href") == "https://partner.example.ro/"


def test_atom_entry_links_keep_rel_and_type(rendered: dict[str, RenderedFeed]) -> None:
    entry = etree.fromstring(rendered["atom"].body).find(f"{ATOM}entry")
    assert entry is not None
    links = {(el.get("rel"), el.get("type"), el.get("href")) for el in entry.findall(f"{ATOM}link")}
    assert links == {
        ("alternate", "text/html", "https://news.example.ro/2024/05/guvernul-aproba"),
        ("enclosure", "image/jpeg", "https://cdn.example.ro/img/buget.jpg?w=800"),
    }


def test_non_ascii_round_trips_in_every_format(rendered: dict[str, RenderedFeed]) -> None:
    for fmt in ("rss", "atom"):
        parsed = _parse(rendered[fmt])
        assert parsed.feed.title == "Toate știrile — Syndicate"
        assert parsed.entries[1].title == "الحكومة توافق على الميزانية الجديدة"
        assert parsed.entries[0].authors[1].name == "Ștefan Țurcanu"
    # UTF-8 bytes, not character references, so the feed stays readable and small.
    assert "ș".encode() in rendered["rss"].body
    assert "الحكومة".encode() in rendered["atom"].body
    doc = json.loads(rendered["json"].body.decode("utf-8"))
    assert doc["items"][1]["title"] == "الحكومة توافق على الميزانية الجديدة"
    assert "ț".encode() in rendered["json"].body


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_hub_and_self_links(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    parsed = _parse(build_feed(meta, items, fmt))
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links["hub"] == meta.hub_url
    assert links["self"] == f"{meta.self_url_base}.{fmt}"
    root = etree.fromstring(build_feed(meta, items, fmt).body)
    atom_links = root.iter(f"{ATOM}link") if fmt == "rss" else root.findall(f"{ATOM}link")
    assert {(el.get("rel"), el.get("href")) for el in atom_links} >= {
        ("hub", meta.hub_url),
        ("self", f"{meta.self_url_base}.{fmt}"),
    }


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_no_hub_link_without_hub_url(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    parsed = _parse(build_feed(dataclasses.replace(meta, hub_url=None), items, fmt))
    assert "hub" not in {link.rel for link in parsed.feed.links}
    assert "self" in {link.rel for link in parsed.feed.links}


def test_json_feed_required_keys_and_fields(rendered: dict[str, RenderedFeed], sample: Any) -> None:
    meta, items = sample
    doc = json.loads(rendered["json"].body)
    assert doc["version"] == JSON_FEED_VERSION
    assert isinstance(doc["title"], str) and doc["title"]
    assert doc["home_page_url"] == meta.home_url
    assert doc["feed_url"] == f"{meta.self_url_base}.json"
    assert doc["hubs"] == [{"type": "WebSub", "url": meta.hub_url}]
    assert isinstance(doc["items"], list)
    seen = set()
    for item, out in zip(items, doc["items"], strict=True):
        assert isinstance(out["id"], str) and out["id"] not in seen
        seen.add(out["id"])
        # The spec requires content_html or content_text on every item.
        assert "content_html" in out or "content_text" in out
        assert out["id"] == item.id
        assert out["url"] == item.url
        assert out["title"] == item.title
        assert datetime.fromisoformat(out["date_published"]) == item.published
        assert [a["name"] for a in out.get("authors", [])] == list(item.authors)
        assert out.get("tags", []) == list(item.categories)
    assert doc["items"][0]["image"] == "https://cdn.example.ro/img/buget.jpg?w=800"
    assert doc["items"][0]["_syndicate"] == {
        "source_name": "Știri Partener",
        "source_url": "https://partner.example.ro/",
    }
    assert doc["items"][0]["attachments"] == [
        {"url": "https://cdn.example.ro/img/buget.jpg?w=800", "mime_type": "image/jpeg"}
    ]
    assert doc["items"][2]["content_text"] == "Tom & Jerry <3 sport"


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    first = build_feed(meta, items, fmt)
    second = build_feed(meta, list(items), fmt)
    assert first.body == second.body
    assert first.etag == second.etag


@pytest.mark.parametrize("fmt", FORMATS)
def test_undated_and_empty_feeds_are_deterministic(fmt: str) -> None:
    meta = FeedMeta(name="x", title="X", home_url="https://x.example/", self_url_base="https://x.example/f")
    undated = [FeedItem(id="https://x.example/1", url="https://x.example/1", title="One")]
    for items in ([], undated):
        assert build_feed(meta, items, fmt).body == build_feed(meta, items, fmt).body


@pytest.mark.parametrize("fmt", FORMATS)
def test_different_items_give_different_etags(sample: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = sample
    base = build_feed(meta, items, fmt).etag
    retitled = [dataclasses.replace(items[0], title=items[0].title + "!"), *items[1:]]
    assert build_feed(meta, retitled, fmt).etag != base
    assert build_feed(meta, items[:2], fmt).etag != base
    assert build_feed(meta, list(reversed(items)), fmt).etag != base


def test_formats_have_distinct_etags(rendered: dict[str, RenderedFeed]) -> None:
    assert len({feed.etag for feed in rendered.values()}) == len(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_feed_is_valid(fmt: str) -> None:
    meta = FeedMeta(
        name="empty", title="Empty", home_url="https://e.example/", self_url_base="https://e.example/f"
    )
    feed = build_feed(meta, [], fmt)
    assert feed.last_modified == EPOCH
    if fmt == "json":
        doc = json.loads(feed.body)
        assert doc["items"] == [] and doc["version"] == JSON_FEED_VERSION and doc["title"] == "Empty"
    else:
        parsed = _parse(feed)
        assert parsed.entries == []
        assert parsed.feed.title == "Empty"


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_input_is_cleaned(hostile: tuple[FeedMeta, list[FeedItem]], fmt: str) -> None:
    meta, items = hostile
    feed = build_feed(meta, items, fmt)
    text = feed.body.decode("utf-8")
    assert not XML_ILLEGAL.search(text.replace("\n", "").replace("\t", "").replace("\r", ""))
    if fmt == "json":
        doc = json.loads(text)
        titles = [item["title"] for item in doc["items"]]
        assert doc["title"] == "Hostile feed"
        assert doc["items"][0]["content_html"] == "<p>Content with  shift-out and </p>"
        assert doc["items"][0]["authors"] == [{"name": "Evil Author"}]
        assert doc["items"][0]["tags"] == ["category"]
    else:
        parsed = _parse(feed)
        titles = [entry.title for entry in parsed.entries]
        assert parsed.feed.title == "Hostile feed"
        assert parsed.entries[0].tags[0].term == "category"
    assert titles[0] == "Null byte, bell, vertical tab, escape and unit sep"
    # The duplicate id is dropped; the untitled item falls back to its id.
    assert len(titles) == 3
    assert titles[1] == "not-an-iri 42"
    assert titles[2] == LONG_TITLE.strip()


def test_non_iri_id_becomes_stable_urn_in_atom(hostile: tuple[FeedMeta, list[FeedItem]]) -> None:
    meta, items = hostile
    parsed = _parse(build_feed(meta, items, "atom"))
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", parsed.entries[1].id)
    assert parsed.entries[1].id == _parse(build_feed(meta, items[1:2], "atom")).entries[0].id
    # JSON Feed ids are plain strings, so the original is kept there.
    assert json.loads(build_feed(meta, items, "json").body)["items"][1]["id"] == "not-an-iri 42"


def test_undated_item_uses_feed_date(hostile: tuple[FeedMeta, list[FeedItem]]) -> None:
    meta, items = hostile
    parsed = _parse(build_feed(meta, items, "atom"))
    expected = _struct(datetime(2024, 2, 29, 22, 0, tzinfo=UTC))
    assert parsed.feed.updated_parsed == expected
    assert parsed.entries[0].updated_parsed == expected
    assert "published_parsed" not in parsed.entries[0]
    rss = _parse(build_feed(meta, items, "rss"))
    assert "published_parsed" not in rss.entries[0]


def test_content_without_summary_gets_text_excerpt_in_rss() -> None:
    meta = FeedMeta(name="x", title="X", home_url="https://x.example/", self_url_base="https://x.example/f")
    body = "<p>" + "cuvânt " * 200 + "</p>"
    item = FeedItem(id="https://x.example/1", url="https://x.example/1", title="T", content_html=body)
    entry = _parse(build_feed(meta, [item], "rss")).entries[0]
    assert entry.content[0].value == body
    assert entry.summary.startswith("cuvânt cuvânt")
    assert entry.summary.endswith("…")
    assert len(entry.summary) <= 281


def test_meta_updated_overrides_item_dates(sample: tuple[FeedMeta, list[FeedItem]]) -> None:
    meta, items = sample
    pinned = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    meta = dataclasses.replace(meta, updated=pinned)
    assert feed_updated(meta, items) == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    for fmt in FORMATS:
        assert build_feed(meta, items, fmt).last_modified == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    parsed = _parse(build_feed(meta, items, "rss"))
    assert calendar.timegm(parsed.feed.updated_parsed) == calendar.timegm(pinned.utctimetuple())


def test_rendering_leaves_the_process_locale_alone(
    sample: tuple[FeedMeta, list[FeedItem]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """feedgen writes RSS dates between ``setlocale(LC_ALL, "C")`` and a restore: process-wide and not
    thread-safe, so two renders in threads could leave the process in C and every later ``open()``
    without an encoding reading ASCII (a CI run failed so). No render may touch the locale."""
    calls: list[tuple[object, ...]] = []
    real = locale.setlocale

    def spy(category: int, value: str | None = None) -> str:
        calls.append((category, value))
        return real(category, value)

    monkeypatch.setattr(locale, "setlocale", spy)
    meta, items = sample
    for fmt in FORMATS:
        build_feed(meta, items, fmt)
    assert calls == []
    rss = etree.fromstring(build_feed(meta, items, "rss").body)
    assert rss.findtext("channel/lastBuildDate") == "Thu, 02 May 2024 08:00:00 +0000"


def test_naive_datetimes_are_taken_as_utc() -> None:
    meta = FeedMeta(name="x", title="X", home_url="https://x.example/", self_url_base="https://x.example/f")
    item = FeedItem(
        id="https://x.example/1",
        url="https://x.example/1",
        title="T",
        published=datetime(2024, 1, 2, 3, 4, 5),
    )
    doc = json.loads(build_feed(meta, [item], "json").body)
    assert doc["items"][0]["date_published"] == "2024-01-02T03:04:05Z"


def test_unknown_format_is_rejected(sample: tuple[FeedMeta, list[FeedItem]]) -> None:
    with pytest.raises(ValueError, match="unknown feed format"):
        build_feed(*sample, "rdf")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("a\x00b\x08c\x0bd\x0ce\x0ef\x1fg", "abcdefg"),
        ("tab\tnewline\ncr\r", "tab\tnewline\ncr\r"),
        ("lone \ud800 surrogate and \ufffe", "lone  surrogate and "),
        ("ș ț ă î â — عربى", "ș ț ă î â — عربى"),
        (None, ""),
    ],
)
def test_clean_text(raw: str | None, clean: str) -> None:
    assert clean_text(raw) == clean


def test_etags_are_stable_across_processes() -> None:
    # Several web workers serve the same feed; they must agree on its ETag whatever their hash seed.
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_feed_build import _load\n"
        "from feeds.build import render_all\n"
        "print(sorted((f, r.etag) for f, r in render_all(*_load('items.json')).items()))\n"
    )
    outputs = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
