"""Article metadata from JSON-LD, OpenGraph/``article:*``/Twitter meta, microdata and visible page text."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag

from worker.normalize.dates import find_date, parse_datetime
from worker.normalize.language import primary_subtag
from worker.normalize.textutil import clean_value, element_text, same_text, squash
from worker.normalize.urls import absolute, same_site, strip_fragment

_ARTICLE_TYPES = {
    "newsarticle": 0,
    "reportagenewsarticle": 0,
    "analysisnewsarticle": 0,
    "opinionnewsarticle": 0,
    "reviewnewsarticle": 0,
    "backgroundnewsarticle": 0,
    "askpublicquestionnewsarticle": 0,
    "article": 1,
    "blogposting": 1,
    "liveblogposting": 1,
    "techarticle": 1,
    "scholarlyarticle": 1,
    "report": 2,
    "socialmediaposting": 2,
    "discussionforumposting": 2,
    "webpage": 3,
    "itempage": 3,
}
_WEBPAGE_RANK = 3
_TITLE_SEPARATORS = (
    " | ",
    " - ",
    " \u2013 ",
    " \u2014 ",
    " :: ",
    " \u00b7 ",
    " \u2022 ",
    " \u00ab ",
    " \u00bb ",
)
_AUTHOR_CLASSES = re.compile(
    r"^(?:author|author-?name|byline|by-line|byline-?author|byline__name|post-author|entry-author|"
    r"article-author|author-link|meta-author)$",
    re.I,
)
_BY_PREFIX = re.compile(r"^(?:written\s+|posted\s+|published\s+)?by[:\s]+", re.I)
_DATE_LINE_SEPARATORS = "-\u2013\u2014|\u2022\u00b7/,:"
_LINE_END = re.compile(r"[.!?\"”]$")
_DIGIT = re.compile(r"\d")
_TRAILING_COMMAS = re.compile(r",\s*([}\]])")
_MAX_LINE = 120
_LINE_BREAKERS = frozenset(
    "address article aside blockquote details div dl figure footer form h1 h2 h3 h4 h5 h6 header hr li main "
    "nav ol p pre section table ul br".split()
)


@dataclass
class Metadata:
    """What the page says about its article, before the body is looked at."""

    title: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    authors: list[str] = field(default_factory=list)
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    image: str | None = None
    description: str | None = None
    language: str | None = None
    canonical_url: str | None = None
    site_name: str | None = None
    body_text: str | None = None
    base_url: str = ""


class PageIndex:
    """The tags metadata extraction looks at, gathered in one pass (bs4 searches are slow on big pages)."""

    _NAMES = frozenset({"meta", "link", "a", "time", "h1", "title", "base", "html"})

    def __init__(self, soup: BeautifulSoup) -> None:
        self.by_name: dict[str, list[Tag]] = defaultdict(list)
        self.itemprop: dict[str, list[Tag]] = defaultdict(list)
        self.author_classed: list[Tag] = []
        self.position: dict[int, int] = {}
        for position, node in enumerate(soup.descendants):
            if not isinstance(node, Tag):
                continue
            self.position[id(node)] = position
            if node.name in self._NAMES:
                self.by_name[node.name].append(node)
            props = node.get("itemprop")
            if props:
                for prop in str(props).split():
                    self.itemprop[prop.lower()].append(node)
            classes = node.get("class")
            if classes and any(_AUTHOR_CLASSES.match(c) for c in classes):
                self.author_classed.append(node)

    def first(self, name: str) -> Tag | None:
        """First tag of that name in document order."""
        tags = self.by_name.get(name)
        return tags[0] if tags else None

    def after(self, anchor: Tag | None, tags: Iterable[Tag]) -> list[Tag]:
        """The given tags that come after ``anchor`` in the document (all of them without an anchor)."""
        if anchor is None:
            return list(tags)
        start = self.position.get(id(anchor), -1)
        return [tag for tag in tags if self.position.get(id(tag), -1) > start]


def attr(tag: Tag, name: str) -> str:
    """An attribute as one string (BeautifulSoup returns lists for multi-valued ones such as ``rel``)."""
    value = tag.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _collect_meta(index: PageIndex) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for tag in index.by_name["meta"]:
        content = clean_value(attr(tag, "content"))
        if not content:
            continue
        for key_attr in ("property", "name", "itemprop", "http-equiv"):
            for key in attr(tag, key_attr).lower().split():
                found[key].append(content)
    return found


def _first(meta: dict[str, list[str]], *keys: str) -> str | None:
    for key in keys:
        for value in meta.get(key, ()):
            if value:
                return value
    return None


def _load_json_ld(blocks: Iterable[str]) -> list[Any]:
    loaded: list[Any] = []
    for raw in blocks:
        text = raw.strip()
        for junk in ("<!--", "-->", "//<![CDATA[", "//]]>", "<![CDATA[", "]]>"):
            text = text.replace(junk, "")
        text = text.strip().rstrip(";")
        if not text:
            continue
        try:
            loaded.append(json.loads(text, strict=False))
        except ValueError:
            try:
                loaded.append(json.loads(_TRAILING_COMMAS.sub(r"\1", text), strict=False))
            except ValueError:
                continue
    return loaded


def _walk(data: Any) -> Iterator[dict[str, Any]]:
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > 25:
            continue
        if isinstance(item, list):
            stack.extend((child, depth + 1) for child in reversed(item))
        elif isinstance(item, dict):
            yield item
            children = [value for value in item.values() if isinstance(value, list | dict)]
            stack.extend((child, depth + 1) for child in reversed(children))


def _types(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    out = set()
    for value in values:
        if isinstance(value, str):
            out.add(value.rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower())
    return out


def _ld_strings(value: Any, index: dict[str, dict[str, Any]], key: str = "name") -> list[str]:
    """Strings from a JSON-LD value that may be a string, a node (resolved by ``@id``) or a list."""
    out: list[str] = []
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > 5:
            continue
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in reversed(item))
        elif isinstance(item, dict):
            if key in item:
                stack.append((item[key], depth + 1))
            elif isinstance(item.get("@id"), str) and item["@id"] in index and index[item["@id"]] is not item:
                stack.append((index[item["@id"]], depth + 1))
    return [text for text in (clean_value(v) for v in out) if text]


def _ld_image(value: Any, index: dict[str, dict[str, Any]]) -> str | None:
    for key in ("url", "contentUrl", "@id"):
        found = _ld_strings(value, index, key)
        if found:
            return found[0]
    return None


def _split_keywords(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in re.split(r"[,;]", value))
    return [part for part in out if part]


def _dedupe(values: Iterable[str], *, limit: int = 50, max_length: int = 100) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        text = squash(value)
        key = text.casefold()
        if not text or key in seen or len(text) > max_length:
            continue
        seen.add(key)
        out.append(text)
        if len(out) >= limit:
            break
    return out


@dataclass
class _LinkedData:
    title: str | None = None
    published: str | None = None
    updated: str | None = None
    authors: list[str] = field(default_factory=list)
    section: str | None = None
    keywords: list[str] = field(default_factory=list)
    image: str | None = None
    description: str | None = None
    language: str | None = None
    url: str | None = None
    site_name: str | None = None
    body: str | None = None


def _linked_data(blocks: Sequence[str]) -> _LinkedData:
    nodes = [node for data in _load_json_ld(blocks) for node in _walk(data)]
    # Bare {"@id": ...} references must not shadow the node they point to.
    index = {node["@id"]: node for node in nodes if isinstance(node.get("@id"), str) and len(node) > 1}
    best: tuple[int, int, dict[str, Any]] | None = None
    site_name = None
    for position, node in enumerate(nodes):
        types = _types(node)
        if "website" in types or "organization" in types or "newsmediaorganization" in types:
            site_name = site_name or next(iter(_ld_strings(node.get("name"), index)), None)
        ranks = [_ARTICLE_TYPES[t] for t in types if t in _ARTICLE_TYPES]
        if not ranks:
            continue
        # Rank by type, then prefer nodes that actually carry a headline.
        key = (min(ranks) * 2 + (0 if node.get("headline") else 1), position)
        if best is None or key < best[:2]:
            best = (key[0], key[1], node)
    out = _LinkedData(site_name=site_name)
    if best is None:
        return out
    node = best[2]
    is_page = min(_ARTICLE_TYPES[t] for t in _types(node) if t in _ARTICLE_TYPES) >= _WEBPAGE_RANK
    if not is_page:
        out.title = next(iter(_ld_strings(node.get("headline") or node.get("name"), index)), None)
        body = node.get("articleBody")
        # Kept raw (not squashed): its blank lines are the only paragraph breaks it has.
        out.body = html_lib.unescape(body).strip() or None if isinstance(body, str) else None
        out.section = next(iter(_ld_strings(node.get("articleSection"), index)), None)
        out.keywords = _split_keywords(_ld_strings(node.get("keywords"), index))
        out.image = _ld_image(node.get("image") or node.get("thumbnailUrl"), index)
        out.description = next(iter(_ld_strings(node.get("description"), index)), None)
        publisher = _ld_strings(node.get("publisher"), index)
        out.site_name = publisher[0] if publisher else site_name
    out.published = next(iter(_ld_strings(node.get("datePublished") or node.get("dateCreated"), index)), None)
    out.updated = next(iter(_ld_strings(node.get("dateModified"), index)), None)
    authors = _ld_strings(node.get("author") or node.get("creator"), index)
    out.authors = [name for name in authors if not name.lower().startswith(("http://", "https://"))]
    out.language = next(iter(_ld_strings(node.get("inLanguage"), index)), None)
    url = node.get("url") or node.get("mainEntityOfPage")
    out.url = next(iter(_ld_strings(url, index, "@id")), None)
    return out


def _strip_site_name(title: str, site_name: str | None) -> str:
    if site_name:
        for sep in _TITLE_SEPARATORS:
            if sep not in title:
                continue
            head, _, tail = title.rpartition(sep)
            if same_text(tail, site_name) and head.strip():
                return head.strip()
            first, _, rest = title.partition(sep)
            if same_text(first, site_name) and rest.strip():
                return rest.strip()
    return title


def _title_from_page(index: PageIndex, site_name: str | None) -> str | None:
    title_tag = index.first("title")
    page_title = clean_value(title_tag.get_text()) if title_tag is not None else ""
    headings = [element_text(h) for h in index.by_name["h1"][:10]]
    headings = [h for h in headings if 3 <= len(h) <= 300]
    # The longest h1 contained in <title> is the headline; a short one is usually the site logo.
    inside = [h for h in headings if page_title and h.casefold() in page_title.casefold()]
    if inside:
        return max(inside, key=len)
    if page_title:
        stripped = _strip_site_name(page_title, site_name)
        if stripped != page_title:
            return stripped
        for sep in _TITLE_SEPARATORS:
            head, found, tail = page_title.rpartition(sep)
            # "Headline | Site": drop a short trailing segment that reads like a site name.
            if found and len(tail) <= 0.4 * len(page_title) and len(tail.split()) <= 4 and head.strip():
                return head.strip()
        return page_title
    return headings[0] if headings else None


def date_line(text: str) -> tuple[datetime, str | None] | None:
    """Parse a visible meta line such as ``"6th March 2019 - IT Systems"`` into (date, category)."""
    line = squash(text)
    if not line or len(line) > _MAX_LINE or _LINE_END.search(line):
        return None
    found = find_date(line)
    if found is None:
        return None
    value, (start, end) = found
    before, after = line[:start].strip(), line[end:].strip()
    if len(before) > 40 or len(after) > 60:
        return None
    category = None
    if after and after[0] in _DATE_LINE_SEPARATORS:
        candidate = after.lstrip(_DATE_LINE_SEPARATORS + " ").strip()
        words = candidate.split()
        if (
            candidate
            and 1 <= len(words) <= 5
            and len(candidate) <= 40
            and not _DIGIT.search(candidate)
            and not candidate.lower().startswith("by ")
        ):
            category = candidate
    return value, category


def line_element(string: NavigableString) -> Tag | None:
    """The largest ancestor of a text node that still reads as one short line (<= 120 characters)."""
    element = string.parent
    if element is None:
        return None
    length = len(element_text(element))
    if length > _MAX_LINE:
        return None
    while element.parent is not None and element.parent.name not in ("body", "html", "[document]"):
        parent = element.parent
        parent_length = len(element_text(parent))
        if parent_length > _MAX_LINE:
            break
        # Climb through inline wrappers and pure wrappers, but stop at a block holding other blocks
        # (a hero box with the <h1> and the date line is not one line).
        holds_blocks = any(isinstance(c, Tag) and c.name in _LINE_BREAKERS for c in parent.children)
        if parent_length != length and holds_blocks:
            break
        element, length = parent, parent_length
    return element


def _visible_date(soup: BeautifulSoup, index: PageIndex) -> tuple[datetime, str | None] | None:
    heading = index.first("h1")
    if heading is not None:
        found = _date_line_in(heading.next_elements)
        if found is not None:
            return found
    # Many blogs print the date line above the heading ("title, date - category, heading" in the seed).
    return _date_line_in((soup.body or soup).descendants)


def _date_line_in(elements: Iterable[PageElement]) -> tuple[datetime, str | None] | None:
    for count, node in enumerate(elements):
        if count > 5000:
            break
        if not isinstance(node, NavigableString) or not 6 <= len(node.strip()) <= _MAX_LINE:
            continue
        if find_date(node) is None:
            continue
        element = line_element(node)
        if element is None:
            continue
        parsed = date_line(element_text(element))
        if parsed:
            return parsed
    return None


def _inside_comments(tag: Tag) -> bool:
    for depth, parent in enumerate(tag.parents):
        if depth > 40:
            break
        hints = (attr(parent, "class") + " " + attr(parent, "id")).lower()
        if "comment" in hints:
            return True
    return False


def _dom_authors(index: PageIndex) -> list[str]:
    found: list[str] = []
    for tag in index.itemprop["author"][:5]:
        name_tag = tag.find(itemprop="name")
        source = name_tag if isinstance(name_tag, Tag) else tag
        value = clean_value(attr(source, "content")) or element_text(source)
        found.append(value)
    for tag in index.by_name["a"]:
        if "author" in attr(tag, "rel").lower().split() and len(found) < 10:
            found.append(element_text(tag))
    if not found:
        for tag in index.author_classed[:10]:
            if not _inside_comments(tag):
                found.append(element_text(tag))
    names = []
    for value in found:
        value = _BY_PREFIX.sub("", value).strip(" ,|-")
        if value and len(value) <= 60 and len(value.split()) <= 6 and not _DIGIT.search(value):
            names.append(value)
    return names


def _split_authors(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        value = _BY_PREFIX.sub("", value).strip()
        if value.lower().startswith(("http://", "https://", "@")):
            continue
        parts = [p.strip() for p in re.split(r"\s*(?:;|&|\band\b)\s*", value) if p.strip()]
        for part in parts:
            pieces = [p.strip() for p in part.split(",") if p.strip()]
            # "Smith, John" is one name; "John Smith, Jane Doe" are two.
            if len(pieces) > 1 and all(len(p.split()) >= 2 for p in pieces):
                out.extend(pieces)
            else:
                out.append(part)
    return out


def _time_element(index: PageIndex, itemprop: str) -> str | None:
    for tag in index.itemprop[itemprop.lower()][:1]:
        value = attr(tag, "datetime") or attr(tag, "content") or element_text(tag)
        if value:
            return value
    if itemprop != "datePublished":
        return None
    times = index.by_name["time"]
    for tag in times:
        if tag.has_attr("pubdate") and attr(tag, "datetime"):
            return attr(tag, "datetime")
    for time_tag in [*index.after(index.first("h1"), times)[:20], *times[:20]]:
        value = attr(time_tag, "datetime")
        if value and parse_datetime(value):
            return value
    return None


def _canonical(index: PageIndex, meta: dict[str, list[str]], ld_url: str | None, url: str, base: str) -> str:
    candidates: list[str | None] = []
    for link in index.by_name["link"]:
        if "canonical" in attr(link, "rel").lower().split():
            candidates.append(attr(link, "href"))
    candidates.extend(meta.get("og:url", []))
    candidates.append(ld_url)
    for candidate in candidates:
        resolved = absolute(base, candidate)
        if resolved and same_site(resolved, url):
            return strip_fragment(resolved)
    return strip_fragment(url)


def _language(index: PageIndex, meta: dict[str, list[str]], ld_language: str | None) -> str | None:
    html_tag = index.first("html")
    values: list[str | None] = []
    if html_tag is not None:
        values += [attr(html_tag, "lang"), attr(html_tag, "xml:lang")]
    values += [
        _first(meta, "og:locale"),
        _first(meta, "content-language", "language", "dc.language", "dcterms.language"),
        ld_language,
    ]
    for value in values:
        lang = primary_subtag(value)
        if lang:
            return lang
    return None


def base_url(index: PageIndex, url: str) -> str:
    """The URL relative references resolve against: ``<base href>`` if usable, else the page URL."""
    for tag in index.by_name["base"]:
        resolved = absolute(url, attr(tag, "href"))
        if resolved:
            return resolved
    return url


def extract_metadata(soup: BeautifulSoup, json_ld: Sequence[str], url: str, index: PageIndex) -> Metadata:
    """Read everything the page declares about its article; the soup is not modified."""
    base = base_url(index, url)
    meta = _collect_meta(index)
    ld = _linked_data(json_ld)
    site_name = _first(meta, "og:site_name", "application-name") or ld.site_name

    title = ld.title or _first(meta, "og:title", "twitter:title", "headline", "dc.title")
    title = _strip_site_name(title, site_name) if title else _title_from_page(index, site_name)

    visible = None
    published = parse_datetime(ld.published)
    for value in (
        _first(
            meta,
            "article:published_time",
            "article:published",
            "og:published_time",
            "datepublished",
            "publishdate",
            "publish-date",
            "pubdate",
            "publication_date",
            "sailthru.date",
            "parsely-pub-date",
            "dc.date.issued",
            "dcterms.created",
            "dc.date",
            "date",
        ),
        _time_element(index, "datePublished"),
    ):
        published = published or parse_datetime(value)
    if published is None:
        visible = _visible_date(soup, index)
        published = visible[0] if visible else None
    updated = parse_datetime(ld.updated) or parse_datetime(
        _first(
            meta,
            "article:modified_time",
            "og:updated_time",
            "datemodified",
            "dcterms.modified",
            "last-modified",
        )
        or _time_element(index, "dateModified")
    )

    authors = ld.authors or _split_authors(meta.get("author", []) + meta.get("article:author", []))
    authors = _dedupe(authors or _dom_authors(index), limit=10)

    category_links = []
    tag_links = []
    for link in index.by_name["a"]:
        rel = attr(link, "rel").lower().split()
        if "category" in rel:
            category_links.append(element_text(link))
        elif "tag" in rel:
            tag_links.append(element_text(link))
    category = ld.section or _first(meta, "article:section", "section", "category")
    category = category or next((c for c in category_links if c), None)
    if category is None:
        visible = visible if visible is not None else _visible_date(soup, index)
        category = visible[1] if visible else None

    tags = _dedupe([*ld.keywords, *meta.get("article:tag", []), *tag_links], limit=30, max_length=60)
    if not tags:
        tags = _dedupe(
            _split_keywords(meta.get("news_keywords", []) + meta.get("keywords", [])), limit=30, max_length=60
        )

    image = None
    for candidate in (
        ld.image,
        _first(
            meta,
            "og:image:secure_url",
            "og:image:url",
            "og:image",
            "twitter:image",
            "twitter:image:src",
            "image",
            "thumbnail",
        ),
    ):
        image = image or absolute(base, candidate)
    if image is None:
        for link in index.by_name["link"]:
            if "image_src" in attr(link, "rel").lower().split():
                image = absolute(base, attr(link, "href"))
                break

    description = ld.description or _first(meta, "og:description", "description", "twitter:description")
    return Metadata(
        title=clean_value(title) or None,
        published=published,
        updated=updated,
        authors=authors,
        category=clean_value(category) or None,
        tags=tags,
        image=image,
        description=description,
        language=_language(index, meta, ld.language),
        canonical_url=_canonical(index, meta, ld.url, url, base),
        site_name=site_name,
        body_text=ld.body,
        base_url=base,
    )
