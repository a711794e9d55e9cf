"""RSS ``<item>`` and Atom ``<entry>`` elements for cleaned items, written with lxml.

feedgen builds the feed document (channel or feed element, namespaces, extensions, serialization) and
calls :meth:`feedgen.entry.FeedEntry.rss_entry` / ``atom_entry`` on each entry it holds. Our entries
are :class:`WrittenEntry`, a ``FeedEntry`` whose element was written here, so the document stays
feedgen's while the per-entry work (most of a cold render) is a dozen ``SubElement`` calls.

Why not feedgen's own ``FeedEntry`` per item: filling one costs its setters' ``ensure_format``
checks, a ``formatRFC2822`` with three ``setlocale`` calls, and the extension dispatch; measured by
``bench/render.py`` that made a cold render of 1,000 items 2.4-3.0x a direct lxml build, against
the issue's goal of 2x (1.5x at 50 items). :func:`feedgen_entry` still builds an entry the feedgen
way, with :class:`feeds.extensions.SyndicateEntryExtension`; it is the reference the writers here are
tested against (``tests/feeds/test_feed_entries.py``: the same bytes for every item, hostile ones
included), so what an entry contains is defined by feedgen and our extension, and only written
faster here.
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from feedgen.entry import FeedEntry
from lxml import etree

from feeds.extensions import DC_NS, EXTENSION_NAME, MEDIA_NS, SyndicateEntryExtension

CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_ENCODED = f"{{{CONTENT_NS}}}encoded"
_CREATOR = f"{{{DC_NS}}}creator"
_MEDIA_CONTENT = f"{{{MEDIA_NS}}}content"


@dataclass(frozen=True)
class CleanItem:
    """An item after cleaning (:func:`feeds.build._clean_item`), shared by all three writers."""

    raw_id: str
    iri: str
    url: str | None
    title: str
    summary: str
    content_html: str
    truncated: bool
    published: datetime | None
    updated: datetime
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    image: str | None
    image_type: str | None
    source_name: str
    source_url: str | None
    source_id: str | None
    content_bytes: int = 0


def _text(parent: Any, tag: str, text: str) -> Any:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element


def _iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def rss_item(item: CleanItem) -> Any:
    """The RSS 2.0 ``<item>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    entry = etree.Element("item")
    _text(entry, "title", item.title)
    if item.url:
        _text(entry, "link", item.url)
    summary = html.escape(item.summary, quote=False) if item.summary else ""
    if summary:
        _text(entry, "description", summary)
        if item.content_html:
            _text(entry, _ENCODED, item.content_html)
    elif item.content_html:
        _text(entry, "description", item.content_html)
    guid = _text(entry, "guid", item.iri)
    guid.set("isPermaLink", "true" if item.url is not None and item.url == item.iri else "false")
    for term in item.categories:
        _text(entry, "category", term)
    if item.published:
        _text(entry, "pubDate", format_datetime(item.published))
    for name in item.authors:
        _text(entry, _CREATOR, name)
    if item.image:
        media = etree.SubElement(entry, _MEDIA_CONTENT, url=item.image, medium="image")
        if item.image_type:
            media.set("type", item.image_type)
    return entry


def atom_entry(item: CleanItem) -> Any:
    """The Atom 1.0 ``<entry>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    entry = etree.Element("entry")
    _text(entry, "id", item.iri)
    _text(entry, "title", item.title)
    _text(entry, "updated", item.updated.isoformat())
    for name in item.authors:
        _text(etree.SubElement(entry, "author"), "name", name)
    # Without a body the summary (or the title) is the content: an entry needs content or a link.
    content = item.content_html or html.escape(item.summary or item.title, quote=False)
    _text(entry, "content", content).set("type", "html")
    if item.summary:
        _text(entry, "summary", html.escape(item.summary, quote=False)).set("type", "html")
    for term in item.categories:
        etree.SubElement(entry, "category", term=term)
    if item.published:
        _text(entry, "published", item.published.isoformat())
    if item.url:
        etree.SubElement(entry, "link", rel="alternate", type="text/html", href=item.url)
    if item.image:
        enclosure = etree.SubElement(entry, "link", rel="enclosure", href=item.image)
        if item.image_type:
            enclosure.set("type", item.image_type)
    if item.source_name and item.source_id:
        source = etree.SubElement(entry, "source")
        _text(source, "id", item.source_id)
        _text(source, "title", item.source_name)
        _text(source, "updated", _iso_z(item.updated))
        if item.source_url:
            etree.SubElement(source, "link", rel="alternate", href=item.source_url)
    return entry


WRITERS = {"rss": rss_item, "atom": atom_entry}


class WrittenEntry(FeedEntry):
    """A feedgen entry whose RSS or Atom element was written beforehand; each render gets a copy.

    The element is cached across renders, and feedgen appends what ``rss_entry``/``atom_entry``
    return into its document, so each call hands out a copy.
    """

    def __init__(self, element: Any) -> None:
        super().__init__()
        self._element = element

    def register_extension(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to register: the element already holds what our extension adds."""

    def rss_entry(self, extensions: bool = True) -> Any:
        """A copy of the written RSS ``<item>``."""
        return copy.deepcopy(self._element)

    def atom_entry(self, extensions: bool = True) -> Any:
        """A copy of the written Atom ``<entry>``."""
        return copy.deepcopy(self._element)


def feedgen_entry(item: CleanItem, fmt: str) -> Any:
    """``item``'s RSS ``<item>`` or Atom ``<entry>`` built by feedgen's ``FeedEntry`` and our extension.

    The reference for :func:`rss_item` and :func:`atom_entry` (they must write the same bytes).
    """
    fe = FeedEntry()
    fe.register_extension(EXTENSION_NAME, SyndicateEntryExtension)
    ext: SyndicateEntryExtension = getattr(fe, EXTENSION_NAME)
    fe.guid(item.iri, permalink=item.url is not None and item.url == item.iri)
    fe.title(item.title)
    if item.url and fmt == "rss":
        fe.link(href=item.url, rel="alternate")
    fe.updated(item.updated)
    if item.published:
        fe.published(item.published)
    if item.content_html:
        fe.content(item.content_html, type="html")
    if item.summary:
        # RSS <description> is HTML, so the plain-text summary is escaped and labelled html
        # in Atom too, keeping the two formats saying the same thing.
        fe.summary(html.escape(item.summary, quote=False), type="html")
    if fmt == "atom" and not item.content_html:
        fe.content(html.escape(item.summary or item.title, quote=False), type="html")
    if item.authors:
        fe.author([{"name": name} for name in item.authors])
        ext.creators = list(item.authors)
    if item.categories:
        fe.category([{"term": term} for term in item.categories])
    if item.image:
        ext.image_url = item.image
        ext.image_type = item.image_type
    ext.link_url = item.url
    if item.source_name and item.source_id:
        ext.source_title = item.source_name
        ext.source_id = item.source_id
        ext.source_url = item.source_url
        ext.source_updated = item.updated
    return fe.rss_entry() if fmt == "rss" else fe.atom_entry()
