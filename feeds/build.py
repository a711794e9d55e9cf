"""Turn articles into RSS 2.0, Atom and JSON Feed 1.1 documents.

feedgen is used for RSS and Atom and stays inside this module (plus :mod:`feeds.extensions`);
JSON Feed is written by hand. Rendering is deterministic: the same :class:`FeedMeta` and items
give the same bytes and therefore the same ETag, so every date in the output is taken from the
data (never from the clock). Text is cleaned of characters XML cannot carry before it reaches
any serializer, so hostile input cannot make rendering fail.
"""

from __future__ import annotations

import hashlib
import html
import json
import posixpath
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds.extensions import EXTENSION_NAME, SyndicateEntryExtension, SyndicateExtension

FORMATS = ("rss", "atom", "json")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
GENERATOR = "Syndicate"
# Atom requires an <updated> even for a feed with no dated items; the clock would break
# determinism, so an undated feed claims the epoch.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXCERPT_CHARS = 280

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
# A fixed table rather than the mimetypes module, whose answers depend on the host's mime.types
# and would make the same feed render differently on different machines.
_IMAGE_TYPES = {
    ".avif": "image/avif",
    ".gif": "image/gif",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}


@dataclass(frozen=True)
class FeedItem:
    """One article as it appears in a feed."""

    id: str
    url: str
    title: str
    summary: str = ""
    content_html: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    image: str | None = None
    source_name: str | None = None


@dataclass(frozen=True)
class FeedMeta:
    """Feed-level data: titles, links and the optional WebSub hub."""

    name: str
    title: str
    home_url: str
    self_url_base: str
    description: str = ""
    language: str | None = None
    hub_url: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class RenderedFeed:
    """A serialized feed plus what an HTTP response for it needs."""

    format: str
    body: bytes
    content_type: str
    etag: str
    last_modified: datetime = EPOCH


def clean_text(value: str | None) -> str:
    """``value`` without the characters XML 1.0 forbids (C0 controls, surrogates, U+FFFE/F)."""
    if not value:
        return ""
    return _XML_ILLEGAL.sub("", value)


def _clean_line(value: str | None) -> str:
    return _WHITESPACE.sub(" ", clean_text(value)).strip()


def _http_url(value: str | None) -> str | None:
    url = clean_text(value).strip()
    return url if _HTTP_URL.match(url) else None


def _image_type(url: str) -> str | None:
    extension = posixpath.splitext(urlsplit(url).path)[1].lower()
    return _IMAGE_TYPES.get(extension)


def _as_iri(value: str) -> str:
    """``value`` if it is an absolute IRI, else a stable ``urn:uuid:`` derived from it."""
    value = clean_text(value).strip()
    if _IRI.match(value):
        return value
    return uuid.uuid5(uuid.NAMESPACE_URL, value).urn


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        # The contract asks for aware datetimes; a naive one is taken as UTC rather than crashing.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def feed_url(meta: FeedMeta, fmt: str) -> str:
    """The public URL of ``meta``'s feed in format ``fmt`` (``self_url_base`` + ``.fmt``)."""
    return f"{meta.self_url_base}.{fmt}"


def _item_updated(item: FeedItem) -> datetime | None:
    dates = [d for d in (_utc(item.published), _utc(item.updated)) if d is not None]
    return max(dates) if dates else None


def feed_updated(meta: FeedMeta, items: Iterable[FeedItem]) -> datetime:
    """When the feed last changed: ``meta.updated``, else the newest item date, else the epoch."""
    if meta.updated is not None:
        return _utc(meta.updated) or EPOCH
    dates = [d for d in map(_item_updated, items) if d is not None]
    return max(dates) if dates else EPOCH


def _excerpt(content_html: str) -> str:
    try:
        text = lxml.html.fromstring(content_html).text_content()
    except (etree.ParserError, ValueError):
        return ""
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text[:EXCERPT_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


@dataclass(frozen=True)
class _Clean:
    """An item after cleaning, shared by all three writers."""

    raw_id: str
    iri: str
    url: str | None
    title: str
    summary: str
    content_html: str
    published: datetime | None
    updated: datetime
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    image: str | None
    source_name: str


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        value = _clean_line(value)
        if value:
            seen.setdefault(value, None)
    return tuple(seen)


def _clean_items(items: Sequence[FeedItem], fallback_date: datetime) -> list[_Clean]:
    out: list[_Clean] = []
    seen_ids: set[str] = set()
    for item in items:
        raw_id = clean_text(item.id).strip() or clean_text(item.url).strip()
        if not raw_id or raw_id in seen_ids:
            continue
        seen_ids.add(raw_id)
        url = _http_url(item.url) or _http_url(raw_id)
        out.append(
            _Clean(
                raw_id=raw_id,
                iri=_as_iri(raw_id),
                url=url,
                title=_clean_line(item.title) or url or raw_id,
                summary=clean_text(item.summary).strip(),
                content_html=clean_text(item.content_html).strip(),
                published=_utc(item.published),
                updated=_item_updated(item) or fallback_date,
                authors=_unique(item.authors),
                categories=_unique(item.categories),
                image=_http_url(item.image),
                source_name=_clean_line(item.source_name),
            )
        )
    return out


def _new_generator(meta: FeedMeta, fmt: str, updated: datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension(EXTENSION_NAME, SyndicateExtension, SyndicateEntryExtension)
    ext: SyndicateExtension = getattr(fg, EXTENSION_NAME)
    title = _clean_line(meta.title) or _clean_line(meta.name) or "Feed"
    self_url = clean_text(feed_url(meta, fmt)).strip()
    home_url = clean_text(meta.home_url).strip() or self_url
    hub_url = clean_text(meta.hub_url).strip() if meta.hub_url else ""
    description = clean_text(meta.description).strip()
    fg.id(_as_iri(clean_text(meta.self_url_base).strip() or title))
    fg.title(title)
    fg.updated(updated)
    fg.generator(GENERATOR)
    links = [{"href": self_url, "rel": "self", "type": CONTENT_TYPES[fmt].split(";")[0]}]
    if hub_url:
        links.append({"href": hub_url, "rel": "hub"})
        ext.hub_url = hub_url
    # feedgen uses the last link added as the RSS <link>, so the site link goes last.
    links.append({"href": home_url, "rel": "alternate"})
    fg.link(links)
    if fmt == "rss":
        fg.description(description or title)
    elif description:
        fg.subtitle(description)
    if meta.language:
        fg.language(_clean_line(meta.language))
    if fmt == "atom":
        # RFC 4287 wants a feed-level author unless every entry has one.
        fg.author({"name": title})
    return fg


def _add_entry(fg: FeedGenerator, item: _Clean, fmt: str) -> None:
    fe = fg.add_entry(order="append")
    ext: SyndicateEntryExtension = getattr(fe, EXTENSION_NAME)
    fe.guid(item.iri, permalink=item.url is not None and item.url == item.iri)
    fe.title(item.title)
    if item.url:
        fe.link(href=item.url, rel="alternate")
    fe.updated(item.updated)
    if item.published:
        fe.published(item.published)
    if item.content_html:
        fe.content(item.content_html, type="html")
    summary = item.summary or (_excerpt(item.content_html) if item.content_html else "")
    if summary:
        # RSS <description> is HTML, so the plain-text summary is escaped and labelled html
        # in Atom too, keeping the two formats saying the same thing.
        fe.summary(html.escape(summary, quote=False), type="html")
    if fmt == "atom" and not item.url and not item.content_html:
        # An Atom entry needs an alternate link or content; the summary or title is all we have.
        fe.content(html.escape(item.summary or item.title, quote=False), type="html")
    if item.authors:
        fe.author([{"name": name} for name in item.authors])
        ext.creators = list(item.authors)
    if item.categories:
        fe.category([{"term": term} for term in item.categories])
    if item.image:
        ext.image_url = item.image
        ext.image_type = _image_type(item.image)
    ext.source_title = item.source_name or None


def _render_xml(meta: FeedMeta, items: list[_Clean], fmt: str, updated: datetime) -> bytes:
    fg = _new_generator(meta, fmt, updated)
    for item in items:
        _add_entry(fg, item, fmt)
    body: bytes = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
    return body


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _render_json(meta: FeedMeta, items: list[_Clean]) -> bytes:
    title = _clean_line(meta.title) or _clean_line(meta.name) or "Feed"
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": title,
    }
    home_url = clean_text(meta.home_url).strip()
    if home_url:
        doc["home_page_url"] = home_url
    doc["feed_url"] = clean_text(feed_url(meta, "json")).strip()
    if meta.description:
        doc["description"] = clean_text(meta.description).strip()
    if meta.language:
        doc["language"] = _clean_line(meta.language)
    if meta.hub_url:
        doc["hubs"] = [{"type": "WebSub", "url": clean_text(meta.hub_url).strip()}]
    doc["items"] = [_json_item(item) for item in items]
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")


def _json_item(item: _Clean) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.raw_id}
    if item.url:
        out["url"] = item.url
    out["title"] = item.title
    # JSON Feed requires content_html or content_text on every item.
    if item.content_html:
        out["content_html"] = item.content_html
    else:
        out["content_text"] = item.summary or item.title
    if item.summary:
        out["summary"] = item.summary
    if item.image:
        out["image"] = item.image
    if item.published:
        out["date_published"] = _iso(item.published)
    out["date_modified"] = _iso(item.updated)
    if item.authors:
        out["authors"] = [{"name": name} for name in item.authors]
    if item.categories:
        out["tags"] = list(item.categories)
    if item.source_name:
        out["_syndicate"] = {"source_name": item.source_name}
    return out


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag derived from ``body``'s SHA-256."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def render_feed(meta: FeedMeta, items: Sequence[FeedItem], fmt: str) -> RenderedFeed:
    """Render ``items`` as ``fmt``, keeping their order.

    Items repeating an earlier id, or with neither id nor URL, are left out.

    ``fmt`` is one of :data:`FORMATS`; anything else raises ``ValueError``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}; expected one of {', '.join(FORMATS)}")
    updated = feed_updated(meta, items)
    cleaned = _clean_items(items, updated)
    body = _render_json(meta, cleaned) if fmt == "json" else _render_xml(meta, cleaned, fmt, updated)
    return RenderedFeed(
        format=fmt, body=body, content_type=CONTENT_TYPES[fmt], etag=etag_for(body), last_modified=updated
    )


def render_all(meta: FeedMeta, items: Sequence[FeedItem]) -> dict[str, RenderedFeed]:
    """Render ``items`` in every format of :data:`FORMATS`, keyed by format."""
    return {fmt: render_feed(meta, items, fmt) for fmt in FORMATS}
