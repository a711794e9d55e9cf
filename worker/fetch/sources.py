"""Source kinds: find the article URLs a partner source currently offers.

* ``listing`` - a section or front page; its links are picked by ``options.link_selector`` (CSS)
  and/or ``options.link_pattern`` (a regex searched in the absolute URL), or else by a heuristic
  that keeps same-site links in the page's content (``<main>``, ``<article>``, ``h1``-``h3``) that
  look like article paths and are not navigation, tag, category, author or pagination links.
* ``sitemap`` - a ``urlset`` or a ``sitemapindex`` (whose newest child sitemaps are followed, a few
  at most), plain or gzipped; ``<lastmod>`` (or a Google News publication date) gives the date and
  entries come newest first.
* ``feed`` - RSS, Atom or JSON Feed; entries keep their title, date and full HTML content if any.
* ``page`` - the source URL itself.
* ``push`` - nothing: its articles arrive over the ingest API.

:func:`crawl` walks a source's documents (listing pages through ``options.next_selector`` or the
common next-page links, see :func:`_next_page`;
sitemap indexes and their children, a robots.txt for its ``Sitemap:`` lines, feeds) as one queue,
with conditional GETs whose validators a :class:`CrawlState` remembers per URL: a 304 is counted and
never parsed, and a child sitemap whose index ``<lastmod>`` is not newer than the one we saw is not
requested at all. A listing's next page is fetched on a source's first crawl until ``limit``
articles are found, and later only while every link of the page is new (past the first known link
we are back where the previous crawl was). A :class:`~worker.errors.HostBusy` stops the walk and
hands back the documents still to fetch, so the crawl resumes there instead of starting over.

Links are made absolute, stripped of fragments, deduplicated in order and capped at
``options.max_articles`` (50 by default). Only http(s) links are kept; other sites' links only when
``link_pattern`` matches them (feeds excepted: their entries are the partner's own choice).
``options.include`` / ``options.exclude`` (regexes searched in the URL) then keep or drop links.

XML from outside is parsed without entity expansion: sitemaps by lxml with ``resolve_entities=False``
and no network, feeds by feedparser after their DOCTYPE (and so every entity declaration) is removed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import feedparser
from bs4 import BeautifulSoup, Tag
from lxml import etree
from soupsieve import SelectorSyntaxError

from config.model import SourceConfig
from worker.errors import Disallowed, FetchError, HostBusy, TooLarge, TransientFetchError, UnsupportedContent
from worker.fetch.http import DEFAULT_ACCEPT, Fetcher, FetchResult

__all__ = [
    "DEFAULT_MAX_ARTICLES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_NEXT_SELECTOR",
    "CrawlResult",
    "CrawlState",
    "Discovered",
    "Document",
    "MemoryState",
    "Sitemap",
    "crawl",
    "discover",
    "discover_from_document",
    "parse_sitemap",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_ARTICLES = 50
DEFAULT_MAX_PAGES = 10
# rel=next is how HTML (and WordPress, Ghost, Drupal...) marks the next page of a listing.
DEFAULT_NEXT_SELECTOR = "link[rel~=next], a[rel~=next]"
# Without rel=next (and no next_selector), these common next-page links are followed, first match wins:
# WordPress core's paginate_links(), Bootstrap, Drupal and theme pagers, a theme's "Older posts" link.
GUESSED_NEXT_SELECTOR = (
    "a.next.page-numbers, .pagination a.next, .pagination .next > a, .pager .next > a, .pager-next > a, "
    "li.next > a, a.next-page, .nav-previous > a, a.older-posts, .older-posts > a"
)
# ...and links whose whole text says "next page" or "older posts" (arrows aside), in a few languages.
_NEXT_TEXT = re.compile(
    r"^(?:next|next page|older|older posts|older entries|older articles|more posts|"
    r"weiter|nächste|nächste seite|ältere beiträge|ältere artikel|"
    r"suivant|page suivante|articles plus anciens|siguiente|página siguiente|entradas anteriores|"
    r"successivo|successiva|pagina successiva|articoli precedenti|"
    r"următoarea|pagina următoare|articole mai vechi|próxima|próxima página|posts mais antigos|"
    r"volgende|volgende pagina|oudere berichten|التالي|الصفحة التالية)$"
)
_ARROWS = " \t\n<>.\u00ab\u00bb\u2039\u203a\u2190\u2192\u2026"  # guillemets, arrows, ellipsis
# A guessed next page must look like one: a page number in the URL, or a path under the listing's own.
_PAGE_MARKER = re.compile(r"/page/\d+|[?&](?:page|paged|p|pg|start|offset|from)=\d+|/\d{1,4}/?$", re.I)
MAX_CHILD_SITEMAPS = 10
MAX_SITEMAP_DEPTH = 2
# The sitemaps.org limit for one uncompressed sitemap; also bounds gzip bombs.
MAX_SITEMAP_BYTES = 50 * 1024 * 1024

FEED_ACCEPT = (
    "application/rss+xml,application/atom+xml,application/feed+json,"
    "application/xml;q=0.9,text/xml;q=0.9,application/json;q=0.8,*/*;q=0.5"
)
SITEMAP_ACCEPT = "application/xml,text/xml;q=0.9,*/*;q=0.5"

_CONTENT_TAGS = frozenset({"main", "article", "h1", "h2", "h3"})
_CHROME_TAGS = frozenset({"nav", "footer", "aside", "form"})
_CHROME_ROLES = frozenset({"navigation", "contentinfo", "complementary", "search"})
# Matched against the parts of class/id values split on - and _ ("site-nav" -> "nav").
_CHROME_WORDS = frozenset(
    {
        "nav",
        "navbar",
        "navigation",
        "menu",
        "pagination",
        "pager",
        "breadcrumb",
        "breadcrumbs",
        "footer",
        "sidebar",
        "share",
        "sharing",
        "social",
        "widget",
    }
)
# Matched against whole class/id values only: WordPress puts "category-news tag-foo" on <article>.
_CHROME_CLASSES = frozenset(
    {
        "tags",
        "tag-list",
        "tag-cloud",
        "tagcloud",
        "post-tags",
        "entry-tags",
        "tags-links",
        "cat-links",
        "categories",
        "byline",
    }
)
_SKIPPED_RELS = frozenset({"tag", "category", "author", "next", "prev", "home", "search", "license"})
_NON_ARTICLE_SEGMENTS = frozenset(
    {
        "tag",
        "tags",
        "category",
        "categories",
        "topic",
        "topics",
        "section",
        "sections",
        "author",
        "authors",
        "page",
        "search",
        "login",
        "signin",
        "sign-in",
        "logout",
        "register",
        "signup",
        "sign-up",
        "subscribe",
        "newsletter",
        "newsletters",
        "account",
        "profile",
        "about",
        "about-us",
        "contact",
        "contact-us",
        "privacy",
        "privacy-policy",
        "terms",
        "terms-of-service",
        "cookies",
        "feed",
        "rss",
        "atom",
        "wp-admin",
        "wp-login.php",
        "wp-content",
        "cart",
        "shop",
        "label",
        "user",
        "users",
        "help",
        "faq",
        "jobs",
        "careers",
        "advertise",
    }
)
_NON_ARTICLE_QUERY = re.compile(r"(?:^|&)(?:page|paged|tag|cat|category|s|q|search|sort)=", re.IGNORECASE)
_ASSET_SUFFIX = re.compile(
    r"\.(?:jpe?g|png|gif|webp|svg|ico|pdf|zip|gz|mp[34]|mov|avi|css|js|json|xml|rss|atom|txt)$",
    re.IGNORECASE,
)
_DATE_IN_PATH = re.compile(r"/(?:19|20)\d{2}/(?:0?[1-9]|1[0-2])/|(?:19|20)\d{2}-[01]\d-[0-3]\d")
_LONG_NUMBER = re.compile(r"\d{4,}")
_PAGE_SUFFIX = re.compile(r"\.(?:s?html?|php|aspx?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Discovered:
    """An article URL found on a source, with what the source said about it."""

    url: str
    title: str | None = None
    published: datetime | None = None
    html: str | None = None
    # When the source says the story last changed (sitemap <lastmod>, a feed entry's updated).
    modified: datetime | None = None
    summary: str | None = None

    def to_hints(self) -> dict[str, str] | None:
        """What the article row keeps of this entry (``articles.hints``) for the fields its page lacks."""
        hints = {
            "title": self.title,
            "summary": self.summary,
            "content_html": self.html,
            "published": self.published.isoformat() if self.published else None,
            "modified": self.modified.isoformat() if self.modified else None,
        }
        kept = {k: v for k, v in hints.items() if v}
        return kept or None

    @classmethod
    def from_hints(cls, url: str, hints: Mapping[str, Any]) -> Discovered:
        """The entry of :meth:`to_hints` back (a date it cannot read is left out; other keys ignored)."""
        return cls(
            url=url,
            title=hints.get("title"),
            published=_hint_time(hints, "published"),
            html=hints.get("content_html"),
            modified=_hint_time(hints, "modified"),
            summary=hints.get("summary"),
        )


def _hint_time(hints: Mapping[str, Any], key: str) -> datetime | None:
    value = hints.get(key)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Sitemap:
    """A parsed sitemap: its article entries, and the child sitemaps of a sitemap index."""

    entries: tuple[Discovered, ...] = ()
    children: tuple[str, ...] = ()
    # The index's <lastmod> of each child, in the order of ``children`` (None where absent).
    child_lastmods: tuple[datetime | None, ...] = ()


def discover(source: SourceConfig, fetcher: Fetcher) -> list[Discovered]:
    """Fetch ``source`` with ``fetcher`` and list the articles it offers (see the module doc).

    A one-off :func:`crawl` with nothing remembered. Raises the fetcher's
    :class:`~worker.errors.FetchError` subclasses; a sitemap index whose every child failed raises
    the first child's error (a transient one if any).
    """
    result = crawl(source, fetcher, MemoryState(), first=True)
    if result.busy is not None:
        raise result.busy
    return result.found


def discover_from_document(
    source: SourceConfig, body: bytes, base_url: str, content_type: str | None
) -> list[Discovered]:
    """List the articles in an already fetched ``body`` of ``source`` (no network access).

    ``base_url`` is the document's final URL (relative links resolve against it) and
    ``content_type`` its Content-Type header, if known. A sitemap index yields no entries here,
    since following its children needs a fetcher (:func:`discover` does that).
    """
    if source.kind == "page":
        url = _clean_url(source.url, source.url)
        return [Discovered(url=url or source.url)]
    if source.kind == "push":
        return []
    if source.kind == "listing":
        return _discover_listing(source, body, base_url, content_type)
    if source.kind == "sitemap":
        return _select_sitemap_entries(source, parse_sitemap(body, base_url).entries, base_url)
    if source.kind == "feed":
        return _discover_feed(source, body, base_url, content_type)
    raise ValueError(f"unknown source kind {source.kind!r}")


# --- shared helpers -----------------------------------------------------------------------------


def _clean_url(href: str, base_url: str) -> str | None:
    """``href`` made absolute against ``base_url``, without fragment; None unless http(s)."""
    href = re.sub(r"[\t\r\n]", "", href).strip()
    if not href:
        return None
    try:
        parts = urlsplit(urljoin(base_url, href))
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _site_host(url: str) -> str:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host.removeprefix("www.")


def _same_site(url: str, site_hosts: Iterable[str]) -> bool:
    host = _site_host(url)
    return any(
        host == site or host.endswith("." + site) or site.endswith("." + host) for site in site_hosts if site
    )


def _pattern(source: SourceConfig) -> re.Pattern[str] | None:
    raw = source.options.get("link_pattern")
    return re.compile(str(raw)) if raw else None


def _max_articles(source: SourceConfig) -> int:
    value = source.options.get("max_articles", DEFAULT_MAX_ARTICLES)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_ARTICLES


def _select(
    source: SourceConfig, items: Iterable[Discovered], base_url: str, *, same_site_only: bool = True
) -> list[Discovered]:
    """Filter by pattern or site, drop the source's own URL, dedupe in order, cap."""
    pattern = _pattern(source)
    include = [re.compile(p) for p in source.options.get("include", [])]
    exclude = [re.compile(p) for p in source.options.get("exclude", [])]
    sites = {_site_host(source.url), _site_host(base_url)}
    own = {_clean_url(source.url, source.url), _clean_url(base_url, base_url)}
    chosen: dict[str, Discovered] = {}
    for item in items:
        if item.url in own:
            continue
        if include and not any(p.search(item.url) for p in include):
            continue
        if any(p.search(item.url) for p in exclude):
            continue
        if pattern is not None:
            if not pattern.search(item.url):
                continue
        elif same_site_only and not _same_site(item.url, sites):
            continue
        previous = chosen.get(item.url)
        if previous is None:
            chosen[item.url] = item
        elif previous.title is None and item.title:
            chosen[item.url] = dataclasses.replace(previous, title=item.title)
    return list(chosen.values())[: _max_articles(source)]


def _parse_datetime(value: str | None) -> datetime | None:
    """A W3C / ISO 8601 date or datetime as an aware UTC datetime (naive means UTC)."""
    if not value:
        return None
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value[:10]), datetime.min.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _plain_text(text: str) -> str:
    """``text`` without markup (feeds may carry HTML titles), whitespace collapsed."""
    if "<" in text or "&" in text:
        text = BeautifulSoup(text, "html.parser").get_text(" ")
    return " ".join(text.split())


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


# --- listing ------------------------------------------------------------------------------------


def _discover_listing(
    source: SourceConfig, body: bytes, base_url: str, content_type: str | None
) -> list[Discovered]:
    soup = BeautifulSoup(body, "lxml", from_encoding=_charset(content_type))
    base = _document_base(soup, base_url)
    selector = source.options.get("link_selector")
    heuristic = not selector and not source.options.get("link_pattern")
    anchors: Sequence[Tag]
    if selector:
        anchors = _select_anchors(soup, str(selector), source.name)
    elif not heuristic:
        anchors = [a for a in soup.find_all("a", href=True) if isinstance(a, Tag)]
    else:
        anchors = _heuristic_anchors(soup)
    items = []
    for anchor in anchors:
        href = anchor.get("href")
        url = _clean_url(href, base) if isinstance(href, str) else None
        if url is None or (heuristic and not _looks_like_article(url)):
            continue
        items.append(Discovered(url=url, title=_anchor_title(anchor)))
    return _select(source, items, base_url)


def _document_base(soup: BeautifulSoup, base_url: str) -> str:
    tag = soup.find("base", href=True)
    href = tag.get("href") if isinstance(tag, Tag) else None
    if isinstance(href, str):
        resolved = _clean_url(href, base_url)
        if resolved:
            return resolved
    return base_url


def _select_anchors(soup: BeautifulSoup, selector: str, source_name: str) -> list[Tag]:
    try:
        matched = soup.select(selector)
    except SelectorSyntaxError as exc:
        raise ValueError(f"source {source_name}: invalid link_selector {selector!r}: {exc}") from None
    anchors: list[Tag] = []
    for element in matched:
        if element.name == "a":
            anchors.append(element)
        else:  # a selector may pick article cards rather than their links
            anchors.extend(a for a in element.find_all("a", href=True) if isinstance(a, Tag))
    return anchors


def _heuristic_anchors(soup: BeautifulSoup) -> list[Tag]:
    usable = [
        a
        for a in soup.find_all("a", href=True)
        if isinstance(a, Tag) and not _skipped_rel(a) and not _in_chrome(a)
    ]
    in_content = [
        a for a in usable if any(p.name in _CONTENT_TAGS or p.get("role") == "main" for p in a.parents)
    ]
    # A page without main/article/headings still lists articles somewhere: fall back to all links.
    return in_content or usable


def _skipped_rel(anchor: Tag) -> bool:
    rel = anchor.get("rel")
    values: list[str] = rel.split() if isinstance(rel, str) else list(rel or [])
    return any(value.lower() in _SKIPPED_RELS for value in values)


def _in_chrome(anchor: Tag) -> bool:
    """Whether the link sits in navigation, footer, sidebar, pagination or tag lists."""
    in_site_header = False
    for parent in anchor.parents:
        name = parent.name
        if name in _CHROME_TAGS or parent.get("role") in _CHROME_ROLES:
            return True
        if name == "header" or parent.get("role") == "banner":
            in_site_header = True
        elif name in ("article", "main"):
            # A <header> inside an article or main is the article's own heading, not the site's.
            in_site_header = False
            break
        for attr in ("class", "id"):
            raw = parent.get(attr)
            values = raw.split() if isinstance(raw, str) else list(raw or [])
            for value in values:
                value = value.lower()
                if value in _CHROME_CLASSES or _CHROME_WORDS.intersection(re.split(r"[-_]", value)):
                    return True
    return in_site_header


def _looks_like_article(url: str) -> bool:
    """Whether a URL's path looks like one article rather than a section, tag or utility page."""
    parts = urlsplit(url)
    if parts.query and _NON_ARTICLE_QUERY.search(parts.query):
        return False
    segments = [s for s in parts.path.lower().split("/") if s]
    if not segments or any(s in _NON_ARTICLE_SEGMENTS for s in segments):
        return False
    last = segments[-1]
    if _ASSET_SUFFIX.search(last):
        return False
    stem = _PAGE_SUFFIX.sub("", last)
    if stem in ("index", "default", "home") or (stem.isdigit() and len(stem) <= 4):
        return False
    if _DATE_IN_PATH.search(parts.path) or _LONG_NUMBER.search(stem):
        return True
    words = [w for w in re.split(r"[-_+]+", stem) if w]
    return len(words) >= 3 or (len(words) == 2 and len(stem) >= 15)


def _anchor_title(anchor: Tag) -> str | None:
    text = " ".join(anchor.get_text(" ", strip=True).split())
    if not text:
        title = anchor.get("title")
        text = " ".join(title.split()) if isinstance(title, str) else ""
    return text or None


# --- sitemap ------------------------------------------------------------------------------------


def parse_sitemap(body: bytes, base_url: str) -> Sitemap:
    """Parse a sitemap (``urlset``), a sitemap index or a plain-text sitemap; gzip is undone.

    Entries keep document order (``published`` from ``<lastmod>`` or ``news:publication_date``);
    child sitemaps come newest first. Raises :class:`UnsupportedContent` for anything else and
    :class:`TooLarge` if a gzipped body inflates past ``MAX_SITEMAP_BYTES``.
    """
    data = _gunzip(body, base_url) if body[:2] == b"\x1f\x8b" else body
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped and not stripped.startswith(b"<"):
        return _parse_text_sitemap(stripped, base_url)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)
    try:
        root = etree.fromstring(stripped, parser)
    except etree.XMLSyntaxError:
        root = None
    if root is None:
        raise UnsupportedContent("not a sitemap: the body is not XML", base_url)
    kind = _local_name(root)
    if kind == "urlset":
        entries = []
        for node in root:
            if _local_name(node) != "url":
                continue
            url = _clean_url(_child_text(node, "loc") or "", base_url)
            if url:
                lastmod = _parse_datetime(_child_text(node, "lastmod"))
                published = _parse_datetime(_child_text(node, "publication_date")) or lastmod
                entries.append(
                    Discovered(
                        url=url, title=_child_text(node, "title"), published=published, modified=lastmod
                    )
                )
        return Sitemap(entries=tuple(entries))
    if kind == "sitemapindex":
        children: list[tuple[datetime | None, str]] = []
        for node in root:
            if _local_name(node) != "sitemap":
                continue
            url = _clean_url(_child_text(node, "loc") or "", base_url)
            if url:
                children.append((_parse_datetime(_child_text(node, "lastmod")), url))
        ordered = _newest_first(children)
        return Sitemap(
            children=tuple(url for _, url in ordered),
            child_lastmods=tuple(when for when, _ in ordered),
        )
    raise UnsupportedContent(f"not a sitemap: the root element is <{kind}>", base_url)


def _gunzip(body: bytes, url: str) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_SITEMAP_BYTES + 1)
    except zlib.error as exc:
        raise UnsupportedContent(f"broken gzip data: {exc}", url) from None
    if len(data) > MAX_SITEMAP_BYTES:
        raise TooLarge(f"gzipped sitemap inflates past {MAX_SITEMAP_BYTES} bytes", url)
    return data


def _parse_text_sitemap(data: bytes, base_url: str) -> Sitemap:
    entries = []
    for line in data.decode("utf-8", "replace").splitlines():
        url = _clean_url(line, base_url) if line.strip().lower().startswith(("http://", "https://")) else None
        if url:
            entries.append(Discovered(url=url))
    if not entries and data:
        raise UnsupportedContent("not a sitemap: neither XML nor a list of URLs", base_url)
    return Sitemap(entries=tuple(entries))


def _local_name(node: Any) -> str:
    tag = node.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _child_text(node: Any, name: str) -> str | None:
    """Text of the first descendant called ``name`` in any namespace (news:title, lastmod...)."""
    for child in node.iter():
        if child is not node and _local_name(child) == name and child.text and child.text.strip():
            return str(child.text).strip()
    return None


def _newest_first(items: Iterable[tuple[datetime | None, str]]) -> list[tuple[datetime | None, str]]:
    dated = list(items)
    oldest = datetime.min.replace(tzinfo=UTC)
    # sorted() is stable, so undated items keep their document order, after the dated ones.
    return sorted(dated, key=lambda item: (item[0] is not None, item[0] or oldest), reverse=True)


def _select_sitemap_entries(
    source: SourceConfig, entries: Iterable[Discovered], base_url: str
) -> list[Discovered]:
    ordered = sorted(
        entries,
        key=lambda e: (e.published is not None, e.published or datetime.min.replace(tzinfo=UTC)),
        reverse=True,
    )
    return _select(source, ordered, base_url)


# --- feeds --------------------------------------------------------------------------------------


def _discover_feed(
    source: SourceConfig, body: bytes, base_url: str, content_type: str | None
) -> list[Discovered]:
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        items = _parse_json_feed(body, base_url)
    else:
        items = _parse_xml_feed(body, base_url, content_type)
    return _select(source, items, base_url, same_site_only=False)


_DOCTYPE = re.compile(rb"<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.IGNORECASE | re.DOTALL)


def _without_doctype(body: bytes) -> bytes:
    """``body`` without its DOCTYPE, so that no entity it declares can be expanded.

    feedparser keeps simple internal entities of a DOCTYPE; one such entity referenced many times
    still multiplies the document (the "quadratic blowup"), so we drop the DOCTYPE altogether. Only
    the prolog is looked at: a DOCTYPE cannot come after the root element.
    """
    root = re.search(rb"<[A-Za-z]", body)
    prolog_end = root.start() if root else len(body)
    head = body[:prolog_end]
    if b"<!" not in head.upper().replace(b"<!--", b""):
        return body
    return _DOCTYPE.sub(b"", head) + body[prolog_end:]


def _entry_time(entry: Any, *keys: str) -> datetime | None:
    for key in keys:
        when = entry.get(key)
        if when:
            return datetime(*when[:6]).replace(tzinfo=UTC)
    return None


def _parse_xml_feed(body: bytes, base_url: str, content_type: str | None) -> list[Discovered]:
    headers = {"content-location": base_url, "content-type": content_type or "application/xml"}
    parsed = feedparser.parse(_without_doctype(body), response_headers=headers)
    if not parsed.entries and not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise UnsupportedContent(f"not a feed: {reason}", base_url)
    items = []
    for entry in parsed.entries:
        link = entry.get("link") or next(
            (
                link.get("href")
                for link in entry.get("links", [])
                if link.get("rel", "alternate") == "alternate" and link.get("href")
            ),
            None,
        )
        url = _clean_url(link, base_url) if isinstance(link, str) else None
        if url is None:
            continue
        published = _entry_time(entry, "published_parsed", "updated_parsed")
        modified = _entry_time(entry, "updated_parsed", "published_parsed")
        html = next(
            (
                c.get("value")
                for c in entry.get("content", [])
                if c.get("type") in ("text/html", "application/xhtml+xml") and (c.get("value") or "").strip()
            ),
            None,
        )
        title = _plain_text(str(entry.get("title") or "")) or None
        summary = _plain_text(str(entry.get("summary") or "")) or None
        items.append(
            Discovered(
                url=url, title=title, published=published, html=html, modified=modified, summary=summary
            )
        )
    return items


def _parse_json_feed(body: bytes, base_url: str) -> list[Discovered]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedContent(f"not a JSON feed: {exc}", base_url) from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise UnsupportedContent("not a JSON feed: no items list", base_url)
    items = []
    for item in document["items"]:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url")
        url = _clean_url(link, base_url) if isinstance(link, str) else None
        if url is None:
            continue
        title = item.get("title")
        title = _plain_text(title) if isinstance(title, str) else ""
        html = item.get("content_html")
        published = item.get("date_published") or item.get("date_modified")
        modified = item.get("date_modified") or item.get("date_published")
        summary = item.get("summary")
        items.append(
            Discovered(
                url=url,
                title=title or None,
                published=_parse_datetime(published) if isinstance(published, str) else None,
                html=html if isinstance(html, str) and html.strip() else None,
                modified=_parse_datetime(modified) if isinstance(modified, str) else None,
                summary=_plain_text(summary) or None if isinstance(summary, str) else None,
            )
        )
    return items


# --- crawling: the document queue, conditional GETs, resumption ---------------------------------


class CrawlState(Protocol):
    """What a crawl remembers between runs (the database in production, a dict in tests)."""

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """The ETag and Last-Modified last seen for ``url``."""
        ...

    def lastmod(self, url: str) -> datetime | None:
        """The modification time the source last announced for ``url`` (a child sitemap)."""
        ...

    def known(self, urls: Sequence[str]) -> set[str]:
        """Which of these article URLs are already stored."""
        ...

    def fetched(self, url: str, result: FetchResult, lastmod: datetime | None = None) -> None:
        """Remember the answer to a fetch of ``url`` (its validators, the announced ``lastmod``)."""
        ...


@dataclass
class MemoryState:
    """A :class:`CrawlState` held in memory: for one-off discovery, tests and benchmarks."""

    states: dict[str, tuple[str | None, str | None, datetime | None]] = field(default_factory=dict)
    articles: set[str] = field(default_factory=set)

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """See :meth:`CrawlState.validators`."""
        etag, last_modified, _ = self.states.get(url, (None, None, None))
        return etag, last_modified

    def lastmod(self, url: str) -> datetime | None:
        """See :meth:`CrawlState.lastmod`."""
        return self.states.get(url, (None, None, None))[2]

    def known(self, urls: Sequence[str]) -> set[str]:
        """See :meth:`CrawlState.known`."""
        return self.articles.intersection(urls)

    def fetched(self, url: str, result: FetchResult, lastmod: datetime | None = None) -> None:
        """See :meth:`CrawlState.fetched`."""
        previous = self.states.get(url, (None, None, None))
        self.states[url] = (result.etag, result.last_modified, lastmod or previous[2])


@dataclass(frozen=True)
class Document:
    """A document of a source still to fetch: a listing page, a sitemap, a feed, or the robots.txt
    whose ``Sitemap:`` lines a sitemap source given as a site's root reads.

    ``depth`` is the page number of a listing page and the nesting of a sitemap; ``lastmod`` what
    the parent sitemap index announced for it.
    """

    url: str
    role: str
    depth: int = 1
    lastmod: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for a crawl cursor stored in the database."""
        return {
            "url": self.url,
            "role": self.role,
            "depth": self.depth,
            "lastmod": self.lastmod.isoformat() if self.lastmod else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Document:
        """The document :meth:`to_json` wrote."""
        return cls(
            url=str(data["url"]),
            role=str(data["role"]),
            depth=int(data.get("depth") or 1),
            lastmod=_parse_datetime(data.get("lastmod")),
        )


@dataclass
class CrawlResult:
    """What one crawl found and what it cost.

    ``found`` are the article URLs offered (deduplicated, in the source's order, newest first for
    sitemaps); ``requests`` counts the requests sent, ``not_modified`` the 304s among them and
    ``bytes`` the body bytes received. ``unchanged`` counts documents skipped or answered 304;
    ``skipped`` the documents robots.txt forbids. ``busy`` is set when the host's budget ran out:
    ``remaining`` are then the documents still to fetch.
    """

    found: list[Discovered] = field(default_factory=list)
    requests: int = 0
    not_modified: int = 0
    bytes: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    remaining: list[Document] = field(default_factory=list)
    busy: HostBusy | None = None


def start_documents(source: SourceConfig) -> list[Document]:
    """The documents a crawl of ``source`` begins with."""
    if source.kind == "listing":
        urls = [source.url, *source.options.get("start_urls", [])]
        return [Document(url, "listing") for url in dict.fromkeys(urls)]
    if source.kind == "sitemap":
        given = list(source.options.get("sitemaps", []))
        if not given and urlsplit(source.url).path in ("", "/"):
            return [Document(urljoin(source.url, "/robots.txt"), "robots")]
        return [Document(url, "sitemap") for url in dict.fromkeys([*([] if given else [source.url]), *given])]
    if source.kind == "feed":
        return [Document(source.url, "feed")]
    return []


def crawl(
    source: SourceConfig,
    fetcher: Fetcher,
    state: CrawlState,
    *,
    first: bool,
    limit: int | None = None,
    resume: Sequence[Document] | None = None,
) -> CrawlResult:
    """Walk the documents of ``source`` (see the module doc) and list the articles found.

    ``first`` says whether this is the source's first crawl, ``limit`` how many articles a first
    crawl wants (listing pages stop once that many are found); ``resume`` the documents an
    interrupted crawl had left. Errors on a start document are raised, as are errors of every
    later document when they leave the crawl with no article at all; :class:`HostBusy` is not
    raised but returned in :attr:`CrawlResult.busy`.
    """
    result = CrawlResult()
    if source.kind in ("page", "push"):
        result.found = discover_from_document(source, b"", source.url, None)
        return result
    starts = start_documents(source)
    queue = list(resume) if resume else list(starts)
    start_urls = {d.url for d in starts}
    seen: set[str] = {d.url for d in queue}
    found: dict[str, Discovered] = {}
    sitemap_entries: list[Discovered] = []
    errors: list[FetchError] = []
    children_fetched = 0
    while queue:
        document = queue.pop(0)
        if document.role == "sitemap" and document.url not in start_urls:
            if children_fetched >= MAX_CHILD_SITEMAPS:
                continue
            stored = state.lastmod(document.url)
            if stored is not None and document.lastmod is not None and document.lastmod <= stored:
                result.unchanged += 1  # the index says it has not changed since we read it
                continue
            children_fetched += 1
        try:
            if document.role == "robots":
                # robots.txt is the Fetcher's (cached, shared): only its Sitemap: lines are ours.
                for url in _robots_sitemaps(source, fetcher):
                    if url not in seen:
                        seen.add(url)
                        start_urls.add(url)
                        queue.append(Document(url, "sitemap"))
                continue
            fetched = _fetch(source, fetcher, state, document, result)
        except HostBusy as busy:
            result.busy = busy
            result.remaining = [document, *queue]
            break
        except Disallowed as exc:
            result.skipped.append((document.url, str(exc)))
            if document.url in start_urls and not resume:
                raise
            continue
        except FetchError as exc:
            if document.url in start_urls and not resume:
                raise
            log.warning("source %s: %s %s failed: %s", source.name, document.role, document.url, exc)
            errors.append(exc)
            continue
        if fetched is None:
            continue
        follow = _parse_document(source, fetcher, document, fetched, state, first=first, limit=limit)
        items, more = follow
        if document.role == "sitemap":
            sitemap_entries.extend(items)
        else:
            for item in items:
                found.setdefault(item.url, item)
        for child in more:
            if child.url not in seen:
                seen.add(child.url)
                queue.append(child)
        if document.role == "listing" and first and limit is not None and len(found) >= limit:
            queue = [d for d in queue if d.role != "listing" or d.depth == 1]
    if sitemap_entries:
        base = source.url
        for item in _select_sitemap_entries(source, sitemap_entries, base):
            found.setdefault(item.url, item)
    result.found = list(found.values())
    if errors and not result.found and result.busy is None:
        transient = [e for e in errors if isinstance(e, TransientFetchError)]
        raise (transient or errors)[0]
    return result


def _accept(role: str) -> str:
    return {"feed": FEED_ACCEPT, "sitemap": SITEMAP_ACCEPT}.get(role, DEFAULT_ACCEPT)


def _fetch(
    source: SourceConfig, fetcher: Fetcher, state: CrawlState, document: Document, result: CrawlResult
) -> FetchResult | None:
    """Conditional GET of ``document``; None for a 304 (counted, never parsed)."""
    etag, last_modified = state.validators(document.url)
    answer = fetcher.get(document.url, etag=etag, last_modified=last_modified, accept=_accept(document.role))
    result.requests += 1
    result.bytes += len(answer.body)
    state.fetched(document.url, answer, document.lastmod)
    if answer.not_modified:
        result.not_modified += 1
        result.unchanged += 1
        return None
    return answer


def _parse_document(
    source: SourceConfig,
    fetcher: Fetcher,
    document: Document,
    answer: FetchResult,
    state: CrawlState,
    *,
    first: bool,
    limit: int | None,
) -> tuple[list[Discovered], list[Document]]:
    """The articles in a fetched document and the documents it leads to."""
    base = answer.final_url
    if document.role == "sitemap":
        sitemap = parse_sitemap(answer.body, base)
        sites = {_site_host(source.url), _site_host(base)}
        children = []
        if document.depth <= MAX_SITEMAP_DEPTH:
            lastmods = sitemap.child_lastmods or (None,) * len(sitemap.children)
            for url, when in zip(sitemap.children, lastmods, strict=False):
                if not _same_site(url, sites):
                    log.warning("source %s: skipping child sitemap on another site: %s", source.name, url)
                    continue
                children.append(Document(url, "sitemap", document.depth + 1, when))
        return list(sitemap.entries), children
    if document.role == "feed":
        return _discover_feed(source, answer.body, base, answer.content_type), []
    items = _discover_listing(source, answer.body, base, answer.content_type)
    if not _is_html(answer):
        raise UnsupportedContent(f"a listing must be an HTML page, got {answer.media_type!r}", base)
    max_pages = source.options.get("max_pages", DEFAULT_MAX_PAGES)
    if document.depth >= max_pages:
        return items, []
    if first:
        wanted = limit is None or len(items) < limit
    else:
        # Past the first known link we are back where the previous crawl stopped.
        wanted = bool(items) and not state.known([i.url for i in items])
    next_url = _next_page(source, answer.body, base, answer.content_type) if wanted else None
    return items, [Document(next_url, "listing", document.depth + 1)] if next_url else []


def _is_html(answer: FetchResult) -> bool:
    media = answer.media_type or ""
    if media in ("text/html", "application/xhtml+xml"):
        return True
    head = answer.body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return media in ("", "application/octet-stream", "text/plain") and head.startswith(
        (b"<!doctype html", b"<html")
    )


def _next_page(source: SourceConfig, body: bytes, base_url: str, content_type: str | None) -> str | None:
    """The listing's next page: ``next_selector``'s link, else rel=next, else a common pager's link.

    The guesses (:data:`GUESSED_NEXT_SELECTOR`, then a link whose text is "Next", "Older posts" and the
    like) are followed only on the page's own host and when the URL looks like a page of this listing
    (``/page/2/``, ``?page=2``, or a path under the listing's); each page is a fetch like any other
    (robots.txt, the host's interval) and the walk stops at ``max_pages`` or at a page already seen.
    """
    soup = BeautifulSoup(body, "lxml", from_encoding=_charset(content_type))
    configured = source.options.get("next_selector")
    url = _first_link(soup, str(configured or DEFAULT_NEXT_SELECTOR), source, base_url)
    if url or configured:
        return url
    guessed = [
        *soup.select(GUESSED_NEXT_SELECTOR),
        *(a for a in soup.find_all("a", href=True) if _NEXT_TEXT.match(_link_text(a))),
    ]
    for element in guessed:
        url = _link_url(soup, element, base_url)
        if url and url != _clean_url(base_url, base_url) and _looks_like_next_page(url, base_url, source):
            return url
    return None


def _link_url(soup: BeautifulSoup, element: Tag, base_url: str) -> str | None:
    link = element if element.get("href") else element.find("a", href=True)
    href = link.get("href") if isinstance(link, Tag) else None
    return _clean_url(href, _document_base(soup, base_url)) if isinstance(href, str) else None


def _first_link(soup: BeautifulSoup, selector: str, source: SourceConfig, base_url: str) -> str | None:
    for element in soup.select(selector):
        url = _link_url(soup, element, base_url)
        if url and url != _clean_url(base_url, base_url) and _same_site(url, {_site_host(source.url)}):
            return url
    return None


def _link_text(anchor: Tag) -> str:
    return " ".join(anchor.get_text(" ", strip=True).split()).strip(_ARROWS).casefold()


def _looks_like_next_page(url: str, base_url: str, source: SourceConfig) -> bool:
    """Same host as the page (or the source) and a page-numbered or deeper path of the listing."""
    parts = urlsplit(url)
    if parts.netloc not in {urlsplit(base_url).netloc, urlsplit(source.url).netloc}:
        return False
    if _PAGE_MARKER.search(f"{parts.path}?{parts.query}" if parts.query else parts.path):
        return True
    listing = urlsplit(base_url).path.rstrip("/") + "/"
    return listing != "/" and parts.path.startswith(listing)


def _robots_sitemaps(source: SourceConfig, fetcher: Fetcher) -> list[str]:
    """The sitemaps robots.txt names for the source's site, else ``/sitemap.xml``."""
    named = fetcher.robots.sitemaps(source.url)
    cleaned = [u for u in (_clean_url(url, source.url) for url in named) if u]
    sites = {_site_host(source.url)}
    same_site = [url for url in dict.fromkeys(cleaned) if _same_site(url, sites)]
    return same_site or [urljoin(source.url, "/sitemap.xml")]
