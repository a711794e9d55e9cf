"""Feed discovery: an OPML 2.0 subscription list of every feed, and HTML ``<link rel="alternate">`` tags.

Pure functions over :class:`FeedLink`s; the web app builds those from the config.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from feeds.build import CONTENT_TYPES, FORMATS, clean_text

CONTENT_TYPE = "text/x-opml; charset=utf-8"


@dataclass(frozen=True)
class FeedLink:
    """One feed as discovery lists it: its title and its URL without the ``.fmt``."""

    title: str
    url_base: str
    home_url: str = ""
    description: str = ""


def render_opml(title: str, feeds: Sequence[FeedLink]) -> bytes:
    """An OPML 2.0 document with one ``type="rss"`` outline per feed (its RSS URL).

    One outline per feed, not per format: a reader importing the list subscribes once to each feed.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = clean_text(title)
    body = etree.SubElement(root, "body")
    for feed in feeds:
        outline = etree.SubElement(
            body,
            "outline",
            type="rss",
            text=clean_text(feed.title),
            title=clean_text(feed.title),
            xmlUrl=f"{feed.url_base}.rss",
        )
        if feed.home_url:
            outline.set("htmlUrl", feed.home_url)
        if feed.description:
            outline.set("description", clean_text(feed.description))
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def discovery_links(feeds: Sequence[FeedLink], opml_url: str | None = None) -> str:
    """``<link rel="alternate">`` tags for every feed in every format, for an HTML page's ``<head>``."""
    e = html.escape
    tags = [
        f'<link rel="alternate" type="{CONTENT_TYPES[fmt].split(";")[0]}" '
        f'title="{e(clean_text(feed.title))} ({fmt.upper()})" href="{e(feed.url_base)}.{fmt}">'
        for feed in feeds
        for fmt in FORMATS
    ]
    if opml_url:
        tags.append(f'<link rel="outline" type="text/x-opml" title="All feeds" href="{e(opml_url)}">')
    return "\n".join(tags)
