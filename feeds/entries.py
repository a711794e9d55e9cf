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

import html
from datetime import datetime
from email.utils import format_datetime
from typing import Any, NamedTuple

from feedgen.entry import FeedEntry
from lxml import etree

from feeds.extensions import DC_NS, EXTENSION_NAME, MEDIA_NS, SyndicateEntryExtension

CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_ENCODED = f"{{{CONTENT_NS}}}encoded"
_CREATOR = f"{{{DC_NS}}}creator"
_MEDIA_CONTENT = f"{{{MEDIA_NS}}}content"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SubElement = etree.SubElement


class CleanItem(NamedTuple):
    """An item after cleaning (:func:`feeds.build._clean_item`), shared by all three writers.

    A named tuple rather than a frozen dataclass: a cold render builds one per item, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost 2 µs of each.
    """

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


def rfc822(value: datetime) -> str:
    """``value`` as an RFC 822 date, as :func:`email.utils.format_datetime` writes it (and feedgen).

    Written out for UTC (every date a cleaned item holds): ``format_datetime`` was a tenth of an
    RSS item's writing time.
    """
    if value.utcoffset():
        return format_datetime(value)
    return (
        f"{_DAYS[value.weekday()]}, {value.day:02d} {_MONTHS[value.month - 1]} {value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} +0000"
    )


def _iso_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# The writers call etree.SubElement inline (no helper per element): a cold render writes about a
# dozen elements per item, and a Python call each was a measurable part of it.
def rss_item(item: CleanItem) -> Any:
    """The RSS 2.0 ``<item>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    entry = etree.Element("item")
    _SubElement(entry, "title").text = item.title
    if item.url:
        _SubElement(entry, "link").text = item.url
    if item.summary:
        _SubElement(entry, "description").text = html.escape(item.summary, quote=False)
        if item.content_html:
            _SubElement(entry, _ENCODED).text = item.content_html
    elif item.content_html:
        _SubElement(entry, "description").text = item.content_html
    permalink = "true" if item.url is not None and item.url == item.iri else "false"
    _SubElement(entry, "guid", isPermaLink=permalink).text = item.iri
    for term in item.categories:
        _SubElement(entry, "category").text = term
    if item.published:
        _SubElement(entry, "pubDate").text = rfc822(item.published)
    for name in item.authors:
        _SubElement(entry, _CREATOR).text = name
    if item.image:
        media = _SubElement(entry, _MEDIA_CONTENT, url=item.image, medium="image")
        if item.image_type:
            media.set("type", item.image_type)
    return entry


def atom_entry(item: CleanItem) -> Any:
    """The Atom 1.0 ``<entry>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    entry = etree.Element("entry")
    _SubElement(entry, "id").text = item.iri
    _SubElement(entry, "title").text = item.title
    _SubElement(entry, "updated").text = item.updated.isoformat()
    for name in item.authors:
        _SubElement(_SubElement(entry, "author"), "name").text = name
    # Without a body the summary (or the title) is the content: an entry needs content or a link.
    content = item.content_html or html.escape(item.summary or item.title, quote=False)
    _SubElement(entry, "content", type="html").text = content
    if item.summary:
        _SubElement(entry, "summary", type="html").text = html.escape(item.summary, quote=False)
    for term in item.categories:
        _SubElement(entry, "category", term=term)
    if item.published:
        _SubElement(entry, "published").text = item.published.isoformat()
    if item.url:
        _SubElement(entry, "link", rel="alternate", type="text/html", href=item.url)
    if item.image:
        enclosure = _SubElement(entry, "link", rel="enclosure", href=item.image)
        if item.image_type:
            enclosure.set("type", item.image_type)
    if item.source_name and item.source_id:
        source = _SubElement(entry, "source")
        _SubElement(source, "id").text = item.source_id
        _SubElement(source, "title").text = item.source_name
        _SubElement(source, "updated").text = _iso_z(item.updated)
        if item.source_url:
            _SubElement(source, "link", rel="alternate", href=item.source_url)
    return entry


WRITERS = {"rss": rss_item, "atom": atom_entry}


class WrittenEntry(FeedEntry):
    """A feedgen entry whose RSS or Atom element was written beforehand; feedgen gets that element.

    feedgen appends what ``rss_entry``/``atom_entry`` return into its document, which moves the
    element there: no copy. The caller must own the element alone for the whole render (the
    element cache in :mod:`feeds.build` hands each cached element to one render at a time) and
    take it back out of the document afterwards if it wants to reuse it.
    """

    def __init__(self, element: Any) -> None:
        super().__init__()
        self._element = element

    def register_extension(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to register: the element already holds what our extension adds."""

    def rss_entry(self, extensions: bool = True) -> Any:
        """The written RSS ``<item>`` itself."""
        return self._element

    def atom_entry(self, extensions: bool = True) -> Any:
        """The written Atom ``<entry>`` itself."""
        return self._element


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
