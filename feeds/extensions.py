"""A feedgen extension for what feedgen itself cannot express.

feedgen writes only the first ``rel="self"`` link into an RSS channel, so the WebSub ``rel="hub"``
and the RFC 5005 ``prev-archive``/``next-archive``/``current`` links would be lost; it has no RFC
5005 ``<fh:archive/>`` marker and no ``<?xml-stylesheet?>`` instruction; it can only write an RSS
``<author>`` for authors with an e-mail address; and its Atom ``<source>`` holds only a title and a
link, while RFC 4287 readers (and the W3C validator) want ``id`` and ``updated`` too; and feedgen 1.0
writes Atom entry links without their ``rel`` and ``type`` (its loop rebinds the link dict to the new
element), which turns an image enclosure into a second alternate link, so entry links are ours too.
The RSS ``<lastBuildDate>`` is ours as well: feedgen formats it with ``setlocale(LC_ALL, "C")`` and back,
which is process-wide and not thread-safe, so two renders in threads could leave the whole process in
the C locale (and every later ``open()`` without an encoding reading ASCII).
:class:`SyndicateExtension` (channel/feed level) and :class:`SyndicateEntryExtension`
(item/entry level) fill those gaps. Register them together under :data:`EXTENSION_NAME`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.util import xml_elem
from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
EXTENSION_NAME = "syndicate"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class SyndicateExtension(BaseExtension):
    """Channel-level additions: namespaces, RSS ``atom:link``s, ``fh:archive`` and the stylesheet PI."""

    def __init__(self) -> None:
        # (rel, href) pairs written as atom:link into an RSS channel (Atom gets them from feedgen).
        self.rss_links: list[tuple[str, str]] = []
        self.archive = False
        self.stylesheet_url: str | None = None
        self.last_build_date: str | None = None  # RFC 822, written by feeds.entries.rfc822

    def extend_ns(self) -> dict[str, str]:
        """Declare the namespaces our elements use once, on the root element."""
        return {"dc": DC_NS, "media": MEDIA_NS, "fh": HISTORY_NS}

    def _common(self, root: Any, container: Any) -> None:
        if self.archive:
            xml_elem(f"{{{HISTORY_NS}}}archive", container)
        if self.stylesheet_url:
            href = self.stylesheet_url.replace('"', "%22")
            root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{href}"'))

    def extend_rss(self, feed: Any) -> Any:
        """Add the extra ``<atom:link>``s right after feedgen's self link, and the archive marker."""
        channel = feed.find("channel")
        anchor = channel.find(f"{{{ATOM_NS}}}link")
        for rel, href in self.rss_links:
            link = xml_elem(f"{{{ATOM_NS}}}link", None, href=href, rel=rel)
            if anchor is not None:
                anchor.addnext(link)
            else:
                channel.append(link)
            anchor = link
        if self.last_build_date:
            # Where feedgen would put it: after <language>, else after <generator>.
            date = etree.Element("lastBuildDate")
            date.text = self.last_build_date
            after = channel.find("language")
            after = after if after is not None else channel.find("generator")
            if after is not None:
                after.addnext(date)
            else:
                channel.append(date)
        self._common(feed, channel)
        return feed

    def extend_atom(self, feed: Any) -> Any:
        """Add the archive marker and the stylesheet (feedgen writes every Atom link itself)."""
        self._common(feed, feed)
        return feed


class SyndicateEntryExtension(BaseEntryExtension):
    """Item-level additions: ``dc:creator`` names, a Media RSS image, a complete Atom ``<source>`` and
    ``rel="related"`` links to the story's other versions (``atom:link`` in RSS)."""

    def __init__(self) -> None:
        self.creators: list[str] = []
        self.image_url: str | None = None
        self.image_type: str | None = None
        self.source_title: str | None = None
        self.source_id: str | None = None
        self.source_url: str | None = None
        self.source_updated: datetime | None = None
        self.link_url: str | None = None
        # Attributes of each rel="related" link: the story's other versions.
        self.related: list[dict[str, str]] = []

    def _add_image(self, entry: Any) -> None:
        if not self.image_url:
            return
        content = xml_elem(f"{{{MEDIA_NS}}}content", entry, url=self.image_url, medium="image")
        if self.image_type:
            content.set("type", self.image_type)

    def extend_rss(self, entry: Any) -> Any:
        """Add ``dc:creator`` per author (RSS ``<author>`` must be an e-mail) and the image."""
        for name in self.creators:
            xml_elem(f"{{{DC_NS}}}creator", entry).text = name
        self._add_image(entry)
        for attrs in self.related:
            xml_elem(f"{{{ATOM_NS}}}link", entry, **attrs)
        return entry

    def extend_atom(self, entry: Any) -> Any:
        """Add the alternate and enclosure links and a ``<source>`` (id, title, updated, link)."""
        if self.link_url:
            xml_elem("link", entry, rel="alternate", type="text/html", href=self.link_url)
        if self.image_url:
            enclosure = xml_elem("link", entry, rel="enclosure", href=self.image_url)
            if self.image_type:
                enclosure.set("type", self.image_type)
        for attrs in self.related:
            xml_elem("link", entry, **attrs)
        if self.source_title and self.source_id and self.source_updated:
            source = xml_elem("source", entry)
            xml_elem("id", source).text = self.source_id
            xml_elem("title", source).text = self.source_title
            xml_elem("updated", source).text = _iso(self.source_updated)
            if self.source_url:
                xml_elem("link", source, rel="alternate", href=self.source_url)
        return entry
