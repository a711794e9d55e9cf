"""Turn articles into RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents.

feedgen builds RSS and Atom and stays inside this module (plus :mod:`feeds.extensions`); JSON Feed
is written with :mod:`json`. Rendering is deterministic: the same :class:`FeedMeta` and items give
the same bytes and therefore the same ETag, so every date in the output comes from the data, never
from the clock (``FeedMeta.now`` is the caller's render time, used only to clamp future dates).

What every format gets, from one cleaning step (:func:`_clean_item`): ids as given (the pipeline
gives RFC 4151 tag URIs that never change), plain-text titles and summaries, bodies sanitized and cut
to ``FeedMeta.max_item_bytes`` with a "Read the full story" link, the lead image in the body and as
media, dates never after ``now``, source attribution, and RFC 5005 archive links.

Speed: a feed is re-rendered when one of its articles changes, so almost every item is one rendered
before. Cleaned items and their RSS/Atom elements are kept in a byte-bounded LRU (:data:`_CACHE`)
and reused, so a render costs about one lxml serialization plus the changed items. Elements are
never copied: a render takes each cached element out of the cache, feedgen moves it into the
document, and once the document is serialized (and about to be dropped) the element is detached
from it and put back (:func:`_render_xml`). An element therefore belongs to one
render at a time, whatever the threads: a second render of the same items meanwhile (web
processes render archive pages in a thread pool) finds them missing and writes its own.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator

from feeds.content import (
    clean_line,
    clean_text,
    excerpt_body,
    fit_html,
    html_excerpt,
    plain_text,
    sanitize_html,
)
from feeds.entries import WRITERS, CleanRelated, WrittenEntry, clear_templates, rfc822
from feeds.entries import CleanItem as _Clean
from feeds.extensions import EXTENSION_NAME, SyndicateExtension

__all__ = [
    "CONTENT_TYPES",
    "EPOCH",
    "FORMATS",
    "JSON_FEED_VERSION",
    "FeedItem",
    "FeedMeta",
    "RelatedVersion",
    "RenderedFeed",
    "build_feed",
    "clean_text",
    "etag_for",
    "feed_updated",
    "feed_url",
    "render_all",
    "tag_authority",
    "tag_uri",
]

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
DEFAULT_MAX_ITEM_BYTES = 100_000
DEFAULT_MAX_FEED_BYTES = 2_000_000

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_HTTP_URL = re.compile(r"^https?://[^\s\"<>\\^`{|}]+$", re.IGNORECASE)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$")
ALSO_REPORTED_BY = "Also reported by"
_DNS_NAME = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
# Plain-text elements whose "<" and "&" the RSS Profile (and the W3C validator) want as hexadecimal
# character references: lxml writes &lt;/&amp;, which say the same thing, so they are re-spelled.
_PLAIN_ELEMENTS = re.compile(rb"<(title|dc:creator|name|category)>([^<]*)</\1>")
# The same for the plain-text title of a related link (its attributes come in a fixed order).
_RELATED_TITLES = re.compile(rb'(<(?:atom:)?link rel="related" [^>]*?title=")([^"]*)(")')
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
class RelatedVersion:
    """Another write-up of an item's story ("Also reported by"): its link, title, source and language.

    ``language`` is a BCP 47 tag (``ro``, ``pt-BR``); anything else is left out of the output.
    """

    url: str
    title: str
    source_name: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class FeedItem:
    """One article (or, in a merged feed, one story) as it appears in a feed.

    ``id`` must never change once the item was published (the pipeline gives a tag URI built from
    stored facts); ``url`` is the link to the original. ``source_name`` / ``source_url`` /
    ``source_id`` attribute a partner's article (an Atom ``<source>`` needs all three).

    ``content_is_clean`` says ``content_html`` already went through an nh3 allowlist no wider than
    :func:`feeds.content.sanitize_html`'s and :func:`feeds.content.clean_text` (the normalizer's
    sanitize does both: the pipeline sets it for stored articles), so the builder neither sanitizes
    nor scans it a second time. It defaults to False: any other
    caller's body is sanitized here.

    ``related`` are the story's other versions: each format lists them ("Also reported by": an
    HTML list after the body, ``atom:link rel="related"`` in Atom and RSS, ``_syndicate`` in JSON
    Feed). ``language`` is the item's own language: a related version in another one is marked
    with ``lang``/``hreflang`` (without it, the feed's language is compared). ``story_id`` names
    the story in JSON Feed's ``_syndicate`` object.
    """

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
    source_url: str | None = None
    source_id: str | None = None
    content_is_clean: bool = False
    related: tuple[RelatedVersion, ...] = ()
    language: str | None = None
    story_id: int | None = None


@dataclass(frozen=True)
class FeedMeta:
    """Feed-level data: titles, links, the WebSub hub, archive links, budgets and the render time.

    ``self_url_base`` + ``.fmt`` is this document's URL. ``prev_archive`` / ``next_archive`` /
    ``current`` are URL bases (without ``.fmt``) of RFC 5005 neighbours; ``current`` set means this
    document is an archive page. ``id`` is the Atom feed id shared by the current feed and its
    archive pages (default: derived from ``self_url_base``).
    """

    name: str
    title: str
    home_url: str
    self_url_base: str
    description: str = ""
    language: str | None = None
    hub_url: str | None = None
    updated: datetime | None = None
    now: datetime | None = None
    id: str | None = None
    stylesheet_url: str | None = None
    prev_archive: str | None = None
    next_archive: str | None = None
    current: str | None = None
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
    max_feed_bytes: int = DEFAULT_MAX_FEED_BYTES


@dataclass(frozen=True)
class RenderedFeed:
    """A serialized feed plus what an HTTP response for it needs."""

    format: str
    body: bytes
    content_type: str
    etag: str
    last_modified: datetime = EPOCH


def tag_authority(base_url: str) -> str:
    """The tagging authority (RFC 4151 DNS name) of a public base URL: its host, without the port."""
    host = (urlsplit(base_url.strip()).hostname or "").lower().rstrip(".")
    return host if _DNS_NAME.match(host) else "localhost"


def tag_uri(authority: str, day: date, specific: str) -> str:
    """An RFC 4151 tag URI ``tag:authority,YYYY-MM-DD:specific``; ``specific`` must be URI-safe."""
    return f"tag:{authority},{day.isoformat()}:{specific}"


def _http_url(value: str | None) -> str | None:
    url = clean_text(value).strip()
    return url if _HTTP_URL.match(url) else None


def _image_type(url: str) -> str | None:
    # The last path segment's extension (leading dots are no extension, as for posixpath.splitext),
    # without urlsplit or splitext: both were a measurable part of a cold render.
    name = url.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1].lstrip(".")
    dot = name.rfind(".")
    return _IMAGE_TYPES.get(name[dot:].lower()) if dot > 0 else None


def _as_iri(value: str) -> str:
    """``value`` if it is an absolute IRI, else a stable ``urn:uuid:`` derived from it."""
    value = clean_text(value).strip()
    if _IRI.match(value):
        return value
    return uuid.uuid5(uuid.NAMESPACE_URL, value).urn


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is UTC and not value.microsecond:
        return value  # what the pipeline passes; the conversion below would return an equal copy
    if value.tzinfo is None:
        # The contract asks for aware datetimes; a naive one is taken as UTC rather than crashing.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _clamp(value: datetime | None, now: datetime | None) -> datetime | None:
    value = _utc(value)
    if value is not None and now is not None and value > now:
        return now
    return value


def feed_url(meta: FeedMeta, fmt: str) -> str:
    """The public URL of ``meta``'s document in format ``fmt`` (``self_url_base`` + ``.fmt``)."""
    return f"{meta.self_url_base}.{fmt}"


_Dates = tuple[datetime | None, datetime | None]


def _item_dates(item: FeedItem, now: datetime | None) -> _Dates:
    """``item``'s published date and its last change (the later of published and updated), clamped."""
    published = _clamp(item.published, now)
    updated = _clamp(item.updated, now)
    if updated is None or (published is not None and published > updated):
        return published, published
    return published, updated


def _feed_updated(meta: FeedMeta, now: datetime | None, dates: Iterable[_Dates]) -> datetime:
    if meta.updated is not None:
        return _clamp(meta.updated, now) or EPOCH
    changed = [updated for _, updated in dates if updated is not None]
    return max(changed) if changed else EPOCH


def feed_updated(meta: FeedMeta, items: Iterable[FeedItem]) -> datetime:
    """When the feed last changed: ``meta.updated``, else the newest item date, else the epoch.

    Item dates after ``meta.now`` count as ``meta.now``: an item dated 2099 cannot pin the feed.
    """
    now = _utc(meta.now)
    return _feed_updated(meta, now, (_item_dates(item, now) for item in items))


class _LRU:
    """A thread-safe LRU bounded by the approximate bytes of what it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            self._data.move_to_end(key)
            return hit[0]

    def take(self, key: Any) -> Any:
        """Remove and return ``key``'s value (None if absent): the caller owns it until it puts it back."""
        with self._lock:
            hit = self._data.pop(key, None)
            if hit is None:
                return None
            self._size -= hit[1]
            return hit[0]

    def take_all(self, keys: Iterable[Any]) -> list[Any]:
        """:meth:`take` for each of ``keys`` under one acquisition of the lock."""
        with self._lock:
            data = self._data
            out: list[Any] = []
            for key in keys:
                hit = data.pop(key, None)
                if hit is None:
                    out.append(None)
                else:
                    self._size -= hit[1]
                    out.append(hit[0])
            return out

    def put(self, key: Any, value: Any, size: int) -> None:
        self.put_all([(key, value, size)])

    def put_all(self, entries: Iterable[tuple[Any, Any, int]]) -> None:
        """Store each ``(key, value, size)`` under one acquisition of the lock, then evict."""
        with self._lock:
            data = self._data
            for key, value, size in entries:
                old = data.pop(key, None)
                if old is not None:
                    self._size -= old[1]
                data[key] = (value, size)
                self._size += size
            while self._size > self.max_bytes and data:
                _, (_, dropped) = data.popitem(last=False)
                self._size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0


# Each item is cached about three times (cleaned, RSS element, Atom element): 96 MB covers a few
# thousand typical items, or a few hundred at the default 100 KB item budget.
_CACHE = _LRU(96_000_000)


# Authors, categories and sources repeat across a feed's items: their cleaning is remembered.
# Pure functions of short strings, so a bounded memo changes nothing but the time.
_plain_name = functools.lru_cache(maxsize=4096)(plain_text)


@functools.lru_cache(maxsize=1024)
def _source_fields(
    name: str | None, url: str | None, source_id: str | None
) -> tuple[str, str | None, str | None]:
    """A source's display name, link and Atom id (None without a name: ``<source>`` needs both)."""
    source_name = _plain_name(name)
    return (
        source_name,
        _http_url(url),
        _as_iri(clean_text(source_id)) if source_id and source_name else None,
    )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        value = _plain_name(value)
        if value:
            seen.setdefault(value, None)
    return tuple(seen)


def _with_image(content_html: str, image: str | None, alt: str) -> str:
    """The lead image at the top of the body, unless the body already shows it."""
    if not image or image in content_html or html.escape(image) in content_html:
        return content_html
    return f'<p><img src="{html.escape(image)}" alt=""></p>' + content_html


def _language(value: str | None) -> str | None:
    """``value`` if it is a BCP 47 language tag (``ro``, ``pt-BR``), else None."""
    value = clean_line(value)
    return value if _LANGUAGE.match(value) else None


def _same_language(a: str | None, b: str | None) -> bool:
    """Whether two language tags name the same language (``en`` and ``en-GB`` do)."""
    return a is not None and b is not None and a.split("-")[0].lower() == b.split("-")[0].lower()


def _clean_related(related: Sequence[RelatedVersion]) -> tuple[CleanRelated, ...]:
    """The related versions that have an http(s) link, cleaned (a repeated link once)."""
    out: dict[str, CleanRelated] = {}
    for version in related:
        url = _http_url(version.url)
        if url is None or url in out:
            continue
        title = plain_text(version.title) or url
        out[url] = CleanRelated(url, title, _plain_name(version.source_name), _language(version.language))
    return tuple(out.values())


def _related_html(related: Sequence[CleanRelated], language: str | None) -> str:
    """The "Also reported by" list: one item per version, ``lang`` on those in another language.

    Built from cleaned text and checked links, then put through the same allowlist as any body.
    """
    rows = []
    for version in related:
        link = f'<a href="{html.escape(version.url)}"'
        if version.language:
            link += f' hreflang="{version.language}"'
        link += f">{html.escape(version.title, quote=False)}</a>"
        if version.source_name:
            link += f" ({html.escape(version.source_name, quote=False)})"
        lang = ""
        if version.language and not _same_language(version.language, language):
            lang = f' lang="{version.language}" dir="auto"'
        rows.append(f"<li{lang}>{link}</li>")
    return sanitize_html(f"<p>{ALSO_REPORTED_BY}:</p><ul>{''.join(rows)}</ul>")


class _Cleaned:
    """A cached cleaned item and its body's UTF-8 size, measured only once a feed budget needs it."""

    __slots__ = ("item", "size")

    def __init__(self, item: _Clean, size: int = -1) -> None:
        self.item = item
        self.size = size

    def body_bytes(self) -> int:
        """The body's UTF-8 size (remembered: a benign race, two threads store the same number)."""
        if self.size < 0:
            self.size = len(self.item.content_html.encode("utf-8"))
        return self.size


def _clean_item(item: FeedItem, raw_id: str, meta: FeedMeta, dates: _Dates, fallback: datetime) -> _Cleaned:
    published, changed = dates
    updated = changed or fallback
    # Keyed by the dates after clamping, not by ``now``: a render one second later reuses the entry.
    key = ("clean", item, raw_id, meta.max_item_bytes, published, updated)
    hit: _Cleaned | None = _CACHE.get(key)
    if hit is not None:
        return hit
    url = _http_url(item.url) or _http_url(raw_id)
    title = plain_text(item.title) or url or clean_line(raw_id)
    image = _http_url(item.image)
    body, truncated = (
        fit_html(item.content_html, meta.max_item_bytes, url, sanitized=item.content_is_clean)
        if item.content_html
        else ("", False)
    )
    summary = plain_text(item.summary) or (html_excerpt(body) if body else "")
    if body or image:
        body = _with_image(body, image, title)
    related = _clean_related(item.related)
    related_html = ""
    if related:
        language = _language(item.language) or _language(meta.language)
        related_html = _related_html(related, language)
        # Without a body, Atom's content would be the list alone: the summary (or title) leads it.
        body = (body or f"<p>{html.escape(summary or title, quote=False)}</p>") + related_html
    source_name, source_url, source_id = _source_fields(item.source_name, item.source_url, item.source_id)
    cleaned = _Clean(
        raw_id=raw_id,
        iri=_as_iri(raw_id),
        url=url,
        title=title,
        summary=summary,
        content_html=body,
        truncated=truncated,
        published=published,
        updated=updated,
        authors=_unique(item.authors),
        categories=_unique(item.categories),
        image=image,
        image_type=_image_type(image) if image else None,
        source_name=source_name,
        source_url=source_url,
        source_id=source_id,
        related=related,
        related_html=related_html,
        story_id=item.story_id,
    )
    entry = _Cleaned(cleaned)
    _CACHE.put(key, entry, 2 * len(body) + len(summary) + 1000)
    return entry


def _clean_items(
    items: Sequence[FeedItem], meta: FeedMeta, fallback: datetime, dates: Sequence[_Dates] | None = None
) -> list[_Clean]:
    """Clean ``items`` (dropping repeated and empty ids) and spend the feed's byte budget in order.

    ``dates`` are :func:`_item_dates` of ``items`` (computed here when not given).
    """
    if dates is None:
        now = _utc(meta.now)
        dates = [_item_dates(item, now) for item in items]
    entries: list[_Cleaned] = []
    seen_ids: set[str] = set()
    for item, item_dates in zip(items, dates, strict=True):
        raw_id = clean_text(item.id).strip() or clean_text(item.url).strip()
        if not raw_id or raw_id in seen_ids:
            continue
        seen_ids.add(raw_id)
        entries.append(_clean_item(item, raw_id, meta, item_dates, fallback))
    # UTF-8 takes at most 4 bytes per character: a feed within budget by that bound (most feeds)
    # needs no body measured.
    if 4 * sum(len(entry.item.content_html) for entry in entries) <= meta.max_feed_bytes:
        return [entry.item for entry in entries]
    out: list[_Clean] = []
    spent = 0
    for entry in entries:
        cleaned = entry.item
        size = entry.body_bytes()
        if spent + size > meta.max_feed_bytes and cleaned.content_html:
            # Over the feed budget: the item stays (no hole in the history) with a short body.
            key = ("short", cleaned)
            short_item: _Cleaned | None = _CACHE.get(key)
            if short_item is None:
                # The "Also reported by" list (short already) stays after the excerpt.
                own = cleaned.content_html.removesuffix(cleaned.related_html)
                short = excerpt_body(own, cleaned.url) + cleaned.related_html
                short_clean = cleaned._replace(content_html=short, truncated=True)
                short_item = _Cleaned(short_clean, len(short.encode("utf-8")))
                _CACHE.put(key, short_item, len(short) + 1000)
            cleaned = short_item.item
            size = short_item.size
        spent += size
        out.append(cleaned)
    return out


def _rss_links(meta: FeedMeta, fmt: str) -> list[tuple[str, str]]:
    links = []
    if meta.hub_url:
        links.append(("hub", clean_text(meta.hub_url).strip()))
    for rel, base in (("current", meta.current), ("prev-archive", meta.prev_archive)):
        if base:
            links.append((rel, f"{base}.{fmt}"))
    if meta.next_archive:
        links.append(("next-archive", f"{meta.next_archive}.{fmt}"))
    return links


def _new_generator(meta: FeedMeta, fmt: str, updated: datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension(EXTENSION_NAME, SyndicateExtension)
    ext: SyndicateExtension = getattr(fg, EXTENSION_NAME)
    title = plain_text(meta.title) or clean_line(meta.name) or "Feed"
    self_url = clean_text(feed_url(meta, fmt)).strip()
    home_url = clean_text(meta.home_url).strip() or self_url
    description = plain_text(meta.description)
    fg.id(_as_iri(clean_text(meta.id or meta.self_url_base).strip() or title))
    fg.title(title)
    if fmt == "rss":
        # Not fg.updated(): feedgen formats lastBuildDate between two setlocale() calls (see
        # feeds.extensions). It has no setter that leaves the element out (the default is now), so its
        # attribute is cleared; a duplicate lastBuildDate in the validator tests would show a rename.
        fg._FeedGenerator__rss_lastBuildDate = None
        ext.last_build_date = rfc822(updated)
    else:
        fg.updated(updated)
    fg.generator(GENERATOR)
    extra = _rss_links(meta, fmt)
    links = [{"href": self_url, "rel": "self", "type": CONTENT_TYPES[fmt].split(";")[0]}]
    if fmt == "atom":
        links += [{"href": href, "rel": rel} for rel, href in extra]
    else:
        ext.rss_links = extra
    # feedgen uses the last link added as the RSS <link>, so the site link goes last.
    links.append({"href": home_url, "rel": "alternate"})
    fg.link(links)
    ext.archive = meta.current is not None
    ext.stylesheet_url = clean_text(meta.stylesheet_url).strip() or None
    if fmt == "rss":
        fg.description(description or title)
    elif description:
        fg.subtitle(description)
    if meta.language:
        fg.language(clean_line(meta.language))
    if fmt == "atom":
        # RFC 4287 wants a feed-level author unless every entry has one.
        fg.author({"name": title})
    return fg


def _hex_refs(match: re.Match[bytes]) -> bytes:
    text = match.group(2).replace(b"&lt;", b"&#x3C;").replace(b"&amp;", b"&#x26;")
    return b"<%s>%s</%s>" % (match.group(1), text, match.group(1))


def _hex_ref_attrs(match: re.Match[bytes]) -> bytes:
    text = match.group(2).replace(b"&lt;", b"&#x3C;").replace(b"&amp;", b"&#x26;")
    return match.group(1) + text + match.group(3)


def _render_xml(meta: FeedMeta, items: list[_Clean], fmt: str, updated: datetime) -> bytes:
    fg = _new_generator(meta, fmt, updated)
    write = WRITERS[fmt]
    # Each element taken from the cache (or written now) is this render's alone until it is put
    # back below; feedgen moves it into the document, no copy.
    keys = [(fmt, item) for item in items]
    elements = _CACHE.take_all(keys)
    for n, element in enumerate(elements):
        if element is None:
            element = elements[n] = write(items[n])
        fg.add_entry(WrittenEntry(element), order="append")
    body: bytes = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
    # The document is done with: the elements leave it (lxml frees a detached element with its
    # last reference, and the document's few remaining nodes with the last of them) and go back
    # into the cache. Should the render fail before this, they are merely not cached.
    for element in elements:
        element.getparent().remove(element)
    _CACHE.put_all(
        (key, element, 2 * len(key[1].content_html) + 2000)
        for key, element in zip(keys, elements, strict=True)
    )
    plain = [plain_text(meta.title), *(i.title for i in items), *(a for i in items for a in i.authors)]
    plain += [c for i in items for c in i.categories]
    if any("<" in p or "&" in p for p in plain):
        body = _PLAIN_ELEMENTS.sub(_hex_refs, body)
    if any("<" in r.label() or "&" in r.label() for i in items for r in i.related):
        body = _RELATED_TITLES.sub(_hex_ref_attrs, body)
    return body


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _render_json(meta: FeedMeta, items: list[_Clean]) -> bytes:
    title = plain_text(meta.title) or clean_line(meta.name) or "Feed"
    doc: dict[str, Any] = {"version": JSON_FEED_VERSION, "title": title}
    home_url = clean_text(meta.home_url).strip()
    if home_url:
        doc["home_page_url"] = home_url
    doc["feed_url"] = clean_text(feed_url(meta, "json")).strip()
    description = plain_text(meta.description)
    if description:
        doc["description"] = description
    if meta.language:
        doc["language"] = clean_line(meta.language)
    if meta.prev_archive:
        # JSON Feed pages towards older items with next_url.
        doc["next_url"] = f"{meta.prev_archive}.json"
    if meta.hub_url:
        doc["hubs"] = [{"type": "WebSub", "url": clean_text(meta.hub_url).strip()}]
    if meta.current or meta.next_archive:
        doc["_rfc5005"] = {
            k: f"{v}.json" for k, v in (("current", meta.current), ("next_archive", meta.next_archive)) if v
        }
    doc["items"] = [_json_item(item) for item in items]
    # No indent: the C encoder only runs without one, and it is several times faster.
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


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
        out["attachments"] = [{"url": item.image, "mime_type": item.image_type or "application/octet-stream"}]
    if item.published:
        out["date_published"] = _iso(item.published)
    out["date_modified"] = _iso(item.updated)
    if item.authors:
        out["authors"] = [{"name": name} for name in item.authors]
    if item.categories:
        out["tags"] = list(item.categories)
    extension: dict[str, Any] = {}
    if item.source_name:
        extension["source_name"] = item.source_name
        if item.source_url:
            extension["source_url"] = item.source_url
    if item.story_id is not None:
        extension["story_id"] = item.story_id
    if item.related:
        extension["also_reported_by"] = [_json_related(version) for version in item.related]
    if extension:
        out["_syndicate"] = extension
    return out


def _json_related(version: CleanRelated) -> dict[str, str]:
    out = {"url": version.url, "title": version.title}
    if version.source_name:
        out["source"] = version.source_name
    if version.language:
        out["language"] = version.language
    return out


def etag_for(body: bytes) -> str:
    """A strong, quoted ETag derived from ``body``'s SHA-256."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def build_feed(meta: FeedMeta, items: Sequence[FeedItem], fmt: str) -> RenderedFeed:
    """Render ``items`` as ``fmt``, keeping their order.

    Items repeating an earlier id, or with neither id nor URL, are left out.

    ``fmt`` is one of :data:`FORMATS`; anything else raises ``ValueError``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}; expected one of {', '.join(FORMATS)}")
    now = _utc(meta.now)
    dates = [_item_dates(item, now) for item in items]
    updated = _feed_updated(meta, now, dates)
    cleaned = _clean_items(items, meta, updated, dates)
    body = _render_json(meta, cleaned) if fmt == "json" else _render_xml(meta, cleaned, fmt, updated)
    return RenderedFeed(
        format=fmt, body=body, content_type=CONTENT_TYPES[fmt], etag=etag_for(body), last_modified=updated
    )


def render_all(meta: FeedMeta, items: Sequence[FeedItem]) -> dict[str, RenderedFeed]:
    """Render ``items`` in every format of :data:`FORMATS`, keyed by format."""
    return {fmt: build_feed(meta, items, fmt) for fmt in FORMATS}


def clear_cache() -> None:
    """Forget every cached item, entry template and memo (benchmarks use it to time a cold render)."""
    _CACHE.clear()
    clear_templates()
    _plain_name.cache_clear()
    _source_fields.cache_clear()
