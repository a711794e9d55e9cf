"""The lxml entry writers (feeds/entries.py) write exactly what feedgen's FeedEntry and our extension build.

feedgen (plus :class:`feeds.extensions.SyndicateEntryExtension`) defines what an RSS item and an Atom
entry contain; :func:`feeds.entries.rss_item` / :func:`~feeds.entries.atom_entry` only write it
faster. Each test serializes both elements and compares the bytes: for the fixture feeds (ordinary
and hostile items, cleaned by the real cleaning step) and for generated items with every field
optional and text drawn from hostile characters (markup, ``]]>``, RTL marks, emoji, astral planes).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import build, entries
from feeds.content import clean_text
from feeds.entries import CleanItem, CleanRelated, atom_entry, feedgen_entry, rss_item
from tests.feeds.test_feed_build import _load

WRITERS = {"rss": rss_item, "atom": atom_entry}


def _bytes(element: object) -> bytes:
    out: bytes = etree.tostring(element, encoding="utf-8")
    return out


def _cleaned(name: str) -> list[CleanItem]:
    meta, items = _load(name)
    updated = build.feed_updated(meta, items)
    return build._clean_items(items, meta, updated)


@pytest.mark.parametrize("fixture", ["items.json", "hostile.json"])
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_fixture_items_written_as_feedgen_builds_them(fixture: str, fmt: str) -> None:
    items = _cleaned(fixture)
    assert len(items) >= 3
    for item in items:
        assert _bytes(WRITERS[fmt](item)) == _bytes(feedgen_entry(item, fmt)), item.raw_id


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]) | st.sampled_from(list("<>&\"']]>\u202e\u200f🇷🇴")),
    max_size=40,
).map(clean_text)
_LINE = _TEXT.map(lambda s: " ".join(s.split()))
_URL = st.sampled_from([None, "https://example.org/a?b=1&c=<2>", "https://news.example/x"])
_WHEN = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


_RELATED = st.builds(
    CleanRelated,
    url=st.sampled_from(["https://ro.example/a?b=1&c=<2>", "https://ar.example/x"]),
    title=_LINE.filter(bool),
    source_name=st.sampled_from(["", "Green Partners", "Rawabi <Tech> & Co"]),
    language=st.sampled_from([None, "ro", "ar", "pt-BR"]),
)


@st.composite
def clean_items(draw: st.DrawFn) -> CleanItem:
    """Items shaped as the cleaning step leaves them: a title always, everything else optional."""
    url = draw(_URL)
    iri = draw(st.sampled_from([url or "tag:example.org,2026-01-01:a/1", "tag:example.org,2026-01-01:a/2"]))
    source_name = draw(st.sampled_from(["", "Cluj IT Cluster", "Rawabi <Tech> & Co"]))
    return CleanItem(
        raw_id=iri,
        iri=iri,
        url=url,
        title=draw(_LINE.filter(bool)),
        summary=draw(_LINE),
        content_html=draw(st.sampled_from(["", "<p>Body &amp; more</p>", "<p>x</p><ul><li>]]></li></ul>"])),
        truncated=draw(st.booleans()),
        published=draw(st.none() | _WHEN),
        updated=draw(_WHEN),
        authors=tuple(draw(st.lists(_LINE.filter(bool), max_size=3, unique=True))),
        categories=tuple(draw(st.lists(_LINE.filter(bool), max_size=3, unique=True))),
        image=draw(st.sampled_from([None, "https://img.example/a.png", "https://img.example/b"])),
        image_type=draw(st.sampled_from([None, "image/png"])),
        source_name=source_name,
        source_url=draw(st.sampled_from([None, "https://clujit.example/"])),
        source_id=draw(st.sampled_from([None, "https://clujit.example/"])) if source_name else None,
        related=tuple(draw(st.lists(_RELATED, max_size=3))),
    )


@settings(max_examples=300, deadline=None)
@given(item=clean_items(), fmt=st.sampled_from(["rss", "atom"]))
def test_generated_items_written_as_feedgen_builds_them(item: CleanItem, fmt: str) -> None:
    assert _bytes(WRITERS[fmt](item)) == _bytes(feedgen_entry(item, fmt))


def test_written_entries_are_copied_per_render() -> None:
    """A cached element handed to two renders must not move between documents."""
    meta, items = _load("items.json")
    first = build.build_feed(meta, items, "rss").body
    second = build.build_feed(meta, items, "rss").body
    assert first == second
    assert first.count(b"<item>") == len({i.id for i in items})


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_an_entry_filled_from_a_template_keeps_nothing_of_the_first(fmt: str) -> None:
    """The second item of a shape is a copy of the first's entry with every text and attribute reset."""
    first, second = _cleaned("items.json")[:1] * 2
    second = second._replace(
        raw_id="tag:example.org,2026-01-01:b/2",
        iri="tag:example.org,2026-01-01:b/2",
        url="https://other.example/b",
        title="Another title",
        summary="Another summary",
        content_html="<p>Another body</p>",
        authors=tuple(f"Author {n}" for n, _ in enumerate(first.authors)),
        categories=tuple(f"topic {n}" for n, _ in enumerate(first.categories)),
        image="https://other.example/b.png",
        source_name="Other source",
        source_url="https://other.example/",
        source_id="https://other.example/",
    )
    entries._TEMPLATES.clear()
    written = [_bytes(WRITERS[fmt](item)) for item in (first, second)]
    assert len(entries._TEMPLATES) == 1  # one shape: the second entry was filled in, not built
    (template,) = entries._TEMPLATES.values()
    assert [e.tag for e in template.iter() if e.text is not None] == []  # no body kept in memory
    assert written == [_bytes(feedgen_entry(item, fmt)) for item in (first, second)]
    old = [first.title, first.url, first.iri, first.source_url, *first.authors, *first.categories]
    assert [value for value in old if value and value.encode() in written[1]] == []
