"""RSS ``<item>`` and Atom ``<entry>`` elements for cleaned items, written with lxml.

feedgen builds the feed document (channel or feed element, namespaces, extensions, serialization) and
calls :meth:`feedgen.entry.FeedEntry.rss_entry` / ``atom_entry`` on each entry it holds. Our entries
are :class:`WrittenEntry`, a ``FeedEntry`` whose element was written here, so the document stays
feedgen's while the per-entry work (most of a cold render) is a copy of a template entry of the
same shape and its texts (:class:`_Out`).

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

from feeds.extensions import ATOM_NS, DC_NS, EXTENSION_NAME, MEDIA_NS, SyndicateEntryExtension

CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_ENCODED = f"{{{CONTENT_NS}}}encoded"
_CREATOR = f"{{{DC_NS}}}creator"
_MEDIA_CONTENT = f"{{{MEDIA_NS}}}content"
_ATOM_LINK = f"{{{ATOM_NS}}}link"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SubElement = etree.SubElement


class CleanRelated(NamedTuple):
    """Another version of an item's story, cleaned: an http(s) link, plain-text title and source name,
    and a BCP 47 language tag or None."""

    url: str
    title: str
    source_name: str
    language: str | None

    def label(self) -> str:
        """How the version is named in a link's ``title``: its title, and its source in parentheses."""
        return f"{self.title} ({self.source_name})" if self.source_name else self.title

    def link_attrs(self) -> dict[str, str]:
        """The attributes of its ``rel="related"`` link (Atom, and ``atom:link`` in RSS), in order."""
        attrs = {"rel": "related", "type": "text/html", "href": self.url}
        if self.language:
            attrs["hreflang"] = self.language
        attrs["title"] = self.label()
        return attrs


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
    # The story's other versions, and the "Also reported by" HTML that ends ``content_html``.
    related: tuple[CleanRelated, ...] = ()
    related_html: str = ""
    story_id: int | None = None


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


class _Out:
    """Where a writer puts an entry's elements: new children of ``parent``, or (``fresh`` False)
    the next children of a copy of an entry of the same shape, whose texts and attributes it sets.

    One writer per format thus both builds an entry's template and fills copies of it. A copy of
    a template is one C call, so filling it costs only the texts: a third less than building the
    same elements one ``SubElement`` at a time (measured on the bench's items), which is about all
    the writing a cold render does.
    """

    __slots__ = ("_children", "_parent")

    def __init__(self, parent: Any, fresh: bool) -> None:
        self._parent = parent
        self._children = None if fresh else iter(parent)

    def add(self, tag: str, text: str | None = None, attrs: dict[str, str] | None = None) -> Any:
        """The next child: ``tag`` with ``attrs`` (in this order) and ``text``."""
        if self._children is None:
            element = _SubElement(self._parent, tag, attrs) if attrs else _SubElement(self._parent, tag)
        else:
            element = next(self._children)
            if attrs:
                for name, value in attrs.items():
                    element.set(name, value)
        if text is not None:
            element.text = text
        return element

    def inside(self, element: Any) -> _Out:
        """The same kind of output for ``element``'s children."""
        return _Out(element, self._children is None)


def _write_rss(item: CleanItem, out: _Out) -> None:
    out.add("title", item.title)
    if item.url:
        out.add("link", item.url)
    if item.summary:
        out.add("description", html.escape(item.summary, quote=False))
        if item.content_html:
            out.add(_ENCODED, item.content_html)
    elif item.content_html:
        out.add("description", item.content_html)
    permalink = "true" if item.url is not None and item.url == item.iri else "false"
    out.add("guid", item.iri, {"isPermaLink": permalink})
    for term in item.categories:
        out.add("category", term)
    if item.published:
        out.add("pubDate", rfc822(item.published))
    for name in item.authors:
        out.add(_CREATOR, name)
    if item.image:
        media = {"url": item.image, "medium": "image"}
        if item.image_type:
            media["type"] = item.image_type
        out.add(_MEDIA_CONTENT, None, media)
    for version in item.related:
        out.add(_ATOM_LINK, None, version.link_attrs())


def _rss_shape(item: CleanItem) -> tuple[Any, ...]:
    """What decides which elements :func:`_write_rss` writes, and in which order."""
    return (
        bool(item.url),
        bool(item.summary),
        bool(item.content_html),
        len(item.categories),
        bool(item.published),
        len(item.authors),
        bool(item.image),
        bool(item.image_type),
        _related_shape(item),
    )


def _related_shape(item: CleanItem) -> tuple[bool, ...]:
    """Which related links an entry has, and which of them carry an ``hreflang``."""
    return tuple(version.language is not None for version in item.related)


def _write_atom(item: CleanItem, out: _Out) -> None:
    out.add("id", item.iri)
    out.add("title", item.title)
    out.add("updated", item.updated.isoformat())
    for name in item.authors:
        out.inside(out.add("author")).add("name", name)
    # Without a body the summary (or the title) is the content: an entry needs content or a link.
    content = item.content_html or html.escape(item.summary or item.title, quote=False)
    out.add("content", content, {"type": "html"})
    if item.summary:
        out.add("summary", html.escape(item.summary, quote=False), {"type": "html"})
    for term in item.categories:
        out.add("category", None, {"term": term})
    if item.published:
        out.add("published", item.published.isoformat())
    if item.url:
        out.add("link", None, {"rel": "alternate", "type": "text/html", "href": item.url})
    if item.image:
        enclosure = {"rel": "enclosure", "href": item.image}
        if item.image_type:
            enclosure["type"] = item.image_type
        out.add("link", None, enclosure)
    for version in item.related:
        out.add("link", None, version.link_attrs())
    if item.source_name and item.source_id:
        source = out.inside(out.add("source"))
        source.add("id", item.source_id)
        source.add("title", item.source_name)
        source.add("updated", _iso_z(item.updated))
        if item.source_url:
            source.add("link", None, {"rel": "alternate", "href": item.source_url})


def _atom_shape(item: CleanItem) -> tuple[Any, ...]:
    """What decides which elements :func:`_write_atom` writes, and in which order."""
    return (
        len(item.authors),
        bool(item.summary),
        len(item.categories),
        bool(item.published),
        bool(item.url),
        bool(item.image),
        bool(item.image_type),
        _related_shape(item),
        bool(item.source_name and item.source_id),
        bool(item.source_url),
    )


# (format, shape) -> an entry of that shape, only ever copied. Shapes are few (counts of authors
# and categories times a few optional fields); the bound only guards against odd data.
_TEMPLATES: dict[tuple[Any, ...], Any] = {}
_MAX_TEMPLATES = 512


def _written(item: CleanItem, tag: str, write: Any, shape: tuple[Any, ...]) -> Any:
    template = _TEMPLATES.get(shape)
    if template is not None:
        entry = template.__copy__()
        write(item, _Out(entry, fresh=False))
        return entry
    entry = etree.Element(tag)
    write(item, _Out(entry, fresh=True))
    if len(_TEMPLATES) >= _MAX_TEMPLATES:
        _TEMPLATES.clear()
    # A copy: the entry itself goes to a document, the template must never be in one. Its texts go
    # (a body may be 100 KB; each fill sets every text the writer writes), its attributes stay.
    template = entry.__copy__()
    for element in template.iter():
        element.text = None
    _TEMPLATES[shape] = template
    return entry


def clear_templates() -> None:
    """Forget the entry templates (a cold render then builds the first entry of each shape)."""
    _TEMPLATES.clear()


def rss_item(item: CleanItem) -> Any:
    """The RSS 2.0 ``<item>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    return _written(item, "item", _write_rss, ("rss", *_rss_shape(item)))


def atom_entry(item: CleanItem) -> Any:
    """The Atom 1.0 ``<entry>`` for ``item``, element for element what :func:`feedgen_entry` builds."""
    return _written(item, "entry", _write_atom, ("atom", *_atom_shape(item)))


WRITERS = {"rss": rss_item, "atom": atom_entry}


class WrittenEntry(FeedEntry):
    """A feedgen entry whose RSS or Atom element was written beforehand; feedgen gets that element.

    feedgen appends what ``rss_entry``/``atom_entry`` return into its document, which moves the
    element there: no copy. The caller must own the element alone for the whole render (the
    element cache in :mod:`feeds.build` hands each cached element to one render at a time) and
    take it back out of the document afterwards if it wants to reuse it.
    """

    def __init__(self, element: Any) -> None:
        # FeedEntry.__init__ is not called: it sets some forty fields (and reads the clock) that
        # nothing reads here, 1.4 µs an entry; FeedGenerator calls only the three methods below.
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
    ext.related = [version.link_attrs() for version in item.related]
    if item.source_name and item.source_id:
        ext.source_title = item.source_name
        ext.source_id = item.source_id
        ext.source_url = item.source_url
        ext.source_updated = item.updated
    return fe.rss_entry() if fmt == "rss" else fe.atom_entry()
