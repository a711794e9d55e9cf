"""A small feedgen extension for what feedgen itself cannot express.

feedgen writes only the first ``rel="self"`` link into an RSS channel, so the WebSub
``rel="hub"`` link would be lost; it can only write an RSS ``<author>`` for authors with an
e-mail address; and its ``<source>`` element needs the originating feed's URL, which we do not
have. :class:`SyndicateExtension` (channel/feed level) and :class:`SyndicateEntryExtension`
(item/entry level) fill those gaps. Register them together under :data:`EXTENSION_NAME`.
"""

from __future__ import annotations

from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.util import xml_elem

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
EXTENSION_NAME = "syndicate"


class SyndicateExtension(BaseExtension):
    """Channel-level additions: namespaces and the RSS ``atom:link rel="hub"``."""

    def __init__(self) -> None:
        self.hub_url: str | None = None

    def extend_ns(self) -> dict[str, str]:
        """Declare the namespaces our item elements use once, on the root element."""
        return {"dc": DC_NS, "media": MEDIA_NS}

    def extend_rss(self, feed: Any) -> Any:
        """Add ``<atom:link rel="hub">`` to the channel, right after the self link if any."""
        if not self.hub_url:
            return feed
        channel = feed.find("channel")
        hub = xml_elem(f"{{{ATOM_NS}}}link", None, href=self.hub_url, rel="hub")
        self_links = channel.findall(f"{{{ATOM_NS}}}link")
        if self_links:
            self_links[-1].addnext(hub)
        else:
            channel.append(hub)
        return feed

    def extend_atom(self, feed: Any) -> Any:
        """Nothing to add: feedgen writes Atom ``rel="hub"`` links itself."""
        return feed


class SyndicateEntryExtension(BaseEntryExtension):
    """Item-level additions: ``dc:creator`` names, a Media RSS image and an Atom source title."""

    def __init__(self) -> None:
        self.creators: list[str] = []
        self.image_url: str | None = None
        self.image_type: str | None = None
        self.source_title: str | None = None

    def _add_image(self, entry: Any) -> None:
        if not self.image_url:
            return
        content = xml_elem(f"{{{MEDIA_NS}}}content", entry, url=self.image_url, medium="image")
        if self.image_type:
            content.set("type", self.image_type)
        xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=self.image_url)

    def extend_rss(self, entry: Any) -> Any:
        """Add ``dc:creator`` per author (RSS ``<author>`` must be an e-mail) and the image."""
        for name in self.creators:
            xml_elem(f"{{{DC_NS}}}creator", entry).text = name
        self._add_image(entry)
        return entry

    def extend_atom(self, entry: Any) -> Any:
        """Add the image and an ``<atom:source>`` carrying the originating site's name."""
        self._add_image(entry)
        if self.source_title:
            source = xml_elem("source", entry)
            xml_elem("title", source).text = self.source_title
        return entry
