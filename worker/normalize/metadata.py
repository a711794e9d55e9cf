"""Article metadata from JSON-LD, OpenGraph/``article:*``/Twitter meta, microdata and visible page text.

Works on the lxml tree before any pruning; the tree is not modified.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from worker.normalize import titles
from worker.normalize.dates import date_in_url, find_date, has_time, parse_datetime
from worker.normalize.language import primary_subtag
from worker.normalize.linked_data import dedupe, linked_data, split_keywords
from worker.normalize.textutil import clean_value, comparable
from worker.normalize.tree import Element, attr, elements, squash, tag_name, text_of
from worker.normalize.urls import absolute, same_site, strip_fragment

_AUTHOR_CLASSES = re.compile(
    r"^(?:author|authors|author-?name|byline|by-line|byline-?author|byline__name|post-author|entry-author|"
    r"article-author|author-link|meta-author|autor|auteur|autore|signature)$",
    re.I,
)
# "By", and its equivalents in the languages we cover, before a byline name.
_BY_PREFIX = re.compile(
    r"^(?:(?:written|posted|published|reported|text|texte|texto|testo)\s+)?"
    r"(?:by|von|vom|par|di|de|por|da|door|av|af|de către|scris de|autor(?:in)?|auteur|autore|author|"
    r"بقلم|كتب|كتبه|كتبت|إعداد|تحرير)[:\s]+",
    re.I,
)
_DATE_LINE_SEPARATORS = "-\u2013\u2014|\u2022\u00b7/,:"
_LINE_END = re.compile(r"[.!?\"”]$")
_DIGIT = re.compile(r"\d")
_MAX_LINE = 120
_LINE_BREAKERS = frozenset(
    "address article aside blockquote details div dl figure footer form h1 h2 h3 h4 h5 h6 header hr li main "
    "nav ol p pre section table ul br".split()
)
_AUTHOR_HINT = re.compile(r"auth|by|aut|signature", re.I)
_NAMES = frozenset({"meta", "link", "a", "time", "h1", "title", "base", "html"})


@dataclass
class Metadata:
    """What the page says about its article, before the body is looked at."""

    title: str | None = None
    published: datetime | None = None
    published_has_time: bool = True
    updated: datetime | None = None
    updated_has_time: bool = True
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    image: str | None = None
    description: str | None = None
    language: str | None = None
    canonical_url: str | None = None
    site_name: str | None = None
    body_text: str | None = None
    base_url: str = ""

    @property
    def category(self) -> str | None:
        """The first category (the one older code reads)."""
        return self.categories[0] if self.categories else None


class PageIndex:
    """The elements metadata extraction looks at, gathered in one pass over the tree."""

    def __init__(self, root: Element) -> None:
        self.root = root
        self.by_name: dict[str, list[Element]] = defaultdict(list)
        self.itemprop: dict[str, list[Element]] = defaultdict(list)
        self.author_classed: list[Element] = []
        for node in elements(root):
            name = node.tag
            if name in _NAMES:
                self.by_name[name].append(node)
            props = node.get("itemprop")
            if props:
                for prop in props.split():
                    self.itemprop[prop.lower()].append(node)
            value = node.get("class")
            if value and _AUTHOR_HINT.search(value) and any(_AUTHOR_CLASSES.match(c) for c in value.split()):
                self.author_classed.append(node)
        self._order: list[Element] | None = None
        self._position: dict[Element, int] = {}

    @property
    def order(self) -> list[Element]:
        """Every element in document order (built on first use: most pages never need it)."""
        if self._order is None:
            self._order = list(elements(self.root))
            self._position = {node: position for position, node in enumerate(self._order)}
        return self._order

    @property
    def position(self) -> dict[Element, int]:
        """Document position of every element."""
        self.order  # noqa: B018 - builds the index
        return self._position

    def first(self, name: str) -> Element | None:
        """First element of that name in document order."""
        found = self.by_name.get(name)
        return found[0] if found else None

    def after(self, anchor: Element | None, found: Iterable[Element]) -> list[Element]:
        """The given elements that come after ``anchor`` in the document (all of them without an anchor)."""
        if anchor is None:
            return list(found)
        start = self.position.get(anchor, -1)
        return [e for e in found if self.position.get(e, -1) > start]


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
            and not _BY_PREFIX.match(candidate)
        ):
            category = candidate
    return value, category


def _line_element(start: Element) -> Element | None:
    """The largest ancestor of an element that still reads as one short line (<= 120 characters)."""
    length = len(text_of(start))
    if length > _MAX_LINE:
        return None
    element = start
    for parent in start.iterancestors():
        if tag_name(parent) in ("body", "html"):
            break
        parent_length = len(text_of(parent))
        if parent_length > _MAX_LINE:
            break
        # Climb through inline wrappers and pure wrappers, but stop at a block holding other blocks
        # (a hero box with the <h1> and the date line is not one line).
        holds_blocks = any(tag_name(c) in _LINE_BREAKERS for c in parent)
        if parent_length != length and holds_blocks:
            break
        element, length = parent, parent_length
    return element


def _visible_date(index: PageIndex) -> tuple[datetime, str | None] | None:
    """The first date line after the headline, else the first one on the page."""
    heading = index.first("h1")
    if heading is not None:
        found = _date_line_in(index.order[index.position[heading] :])
        if found is not None:
            return found
    return _date_line_in(index.order)


def _date_line_in(nodes: Sequence[Element]) -> tuple[datetime, str | None] | None:
    for count, node in enumerate(nodes):
        if count > 3000:
            break
        for value, owner in ((node.text, node), (node.tail, node.getparent())):
            if owner is None or not value or not 6 <= len(value.strip()) <= _MAX_LINE:
                continue
            if tag_name(owner) in ("script", "style", "title", "head") or find_date(value) is None:
                continue
            element = _line_element(owner)
            if element is None:
                continue
            parsed = date_line(text_of(element))
            if parsed:
                return parsed
    return None


def _inside_comments(element: Element) -> bool:
    for depth, parent in enumerate(element.iterancestors()):
        if depth > 40:
            break
        hints = (attr(parent, "class") + " " + attr(parent, "id")).lower()
        if "comment" in hints:
            return True
    return False


def clean_author(value: str) -> str:
    """A byline as a bare name: "By"/"von"/"par"/"بقلم"... and separators stripped."""
    value = squash(value)
    for _ in range(2):
        value = _BY_PREFIX.sub("", value).strip(" ,|-\u2013\u2014:\u00b7\u2022")
    return value


def _dom_authors(index: PageIndex) -> list[str]:
    found: list[str] = []
    for tag in index.itemprop["author"][:5]:
        name_tag = next((e for e in elements(tag) if "name" in attr(e, "itemprop").split()), None)
        source = name_tag if name_tag is not None else tag
        found.append(clean_value(attr(source, "content")) or text_of(source))
    for tag in index.by_name["a"]:
        if "author" in attr(tag, "rel").lower().split() and len(found) < 10:
            found.append(text_of(tag))
    if not found:
        for tag in index.author_classed[:10]:
            if not _inside_comments(tag):
                found.append(text_of(tag))
    names = []
    for value in _split_authors(found):
        if value and len(value) <= 60 and len(value.split()) <= 6 and not _DIGIT.search(value):
            names.append(value)
    return names


def _split_authors(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        value = clean_author(value)
        if value.lower().startswith(("http://", "https://", "@")):
            continue
        parts = re.split(r"\s*(?:;|&|\||\band\b|\bund\b|\bet\b|\by\b|\be\b|\bși\b|\bsi\b|\bو)\s*", value)
        for part in (p.strip() for p in parts):
            if not part:
                continue
            pieces = [p.strip() for p in part.split(",") if p.strip()]
            # "Smith, John" is one name; "John Smith, Jane Doe" are two.
            if len(pieces) > 1 and all(len(p.split()) >= 2 for p in pieces):
                out.extend(clean_author(p) for p in pieces)
            else:
                out.append(clean_author(part))
    return [name for name in out if name]


def _unique_people(names: Iterable[str]) -> list[str]:
    """Drop repeats, also a name that another entry holds whole ("Jane Doe" beside "Jane Doe, Reuters")."""
    kept: list[str] = []
    for name in dedupe(names, limit=10):
        key = comparable(name)
        if any(key == comparable(other) or key in comparable(other).split(", ") for other in kept):
            continue
        kept = [other for other in kept if comparable(other) not in key.split(", ")]
        kept.append(name)
    return kept


def _time_element(index: PageIndex, itemprop: str) -> str | None:
    for tag in index.itemprop[itemprop.lower()][:1]:
        value = attr(tag, "datetime") or attr(tag, "content") or text_of(tag)
        if value:
            return value
    if itemprop != "datePublished":
        return None
    times = index.by_name["time"]
    for tag in times:
        if tag.get("pubdate") is not None and attr(tag, "datetime"):
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


_PUBLISHED_KEYS = (
    "article:published_time",
    "article:published",
    "og:published_time",
    "datepublished",
    "publishdate",
    "publish-date",
    "publish_date",
    "pubdate",
    "publication_date",
    "sailthru.date",
    "parsely-pub-date",
    "dc.date.issued",
    "dcterms.created",
    "dcterms.issued",
    "dc.date",
    "date",
)
_UPDATED_KEYS = (
    "article:modified_time",
    "og:updated_time",
    "datemodified",
    "dcterms.modified",
    "last-modified",
)


def _when(value: str | None) -> tuple[datetime, bool] | None:
    parsed = parse_datetime(value)
    return (parsed, has_time(value)) if parsed else None


def _published(
    ld_value: str | None, meta: dict[str, list[str]], index: PageIndex, markup: str, url: str
) -> tuple[datetime | None, bool, tuple[datetime, str | None] | None]:
    """(date, has a time of day, visible date line): JSON-LD, meta, ``<time>``, then the page and its URL."""
    for value in (ld_value, _first(meta, *_PUBLISHED_KEYS), _time_element(index, "datePublished")):
        found = _when(value)
        if found:
            return found[0], found[1], None
    guessed = _htmldate(markup, url)
    if guessed is not None:
        return guessed, False, None
    visible = _visible_date(index)
    if visible is not None:
        return visible[0], False, visible
    from_url = date_in_url(url)
    return from_url, False, None


def _htmldate(markup: str, url: str) -> datetime | None:
    """htmldate's guess (its fast mode, original date) when the library is installed; None otherwise.

    It is given the markup, not our tree: it only accepts ``lxml.html`` elements, which our parser does
    not build (see :mod:`worker.normalize.tree`). It runs only when JSON-LD, meta and ``<time>`` said nothing.
    """
    try:  # lazy: htmldate adds ~50 ms to an import, and only a page stating no date gets here
        from htmldate import find_date as htmldate_find  # noqa: PLC0415
    except ImportError:
        return None
    try:
        value = htmldate_find(
            markup, url=url, original_date=True, extensive_search=False, outputformat="%Y-%m-%d"
        )
    except Exception:
        return None
    return parse_datetime(value) if isinstance(value, str) else None


def extract_metadata(markup: str, json_ld: Sequence[str], url: str, index: PageIndex) -> Metadata:
    """Read everything the page declares about its article; the tree is not modified."""
    base = base_url(index, url)
    meta = _collect_meta(index)
    ld = linked_data(json_ld)
    site_name = _first(meta, "og:site_name", "application-name") or ld.site_name

    title_tag = index.first("title")
    title = titles.choose(
        headline=ld.title,
        og_title=_first(meta, "og:title", "twitter:title", "headline", "dc.title"),
        page_title=clean_value(text_of(title_tag)) if title_tag is not None else "",
        headings=[text_of(h) for h in index.by_name["h1"][:10]],
        site_name=site_name,
        url=url,
    )

    published, published_has_time, visible = _published(ld.published, meta, index, markup, url)
    updated_found = _when(ld.updated) or _when(
        _first(meta, *_UPDATED_KEYS) or _time_element(index, "dateModified")
    )

    people = ld.authors or _split_authors(meta.get("author", []) + meta.get("article:author", []))
    people = [p for p in people if not p.lower().startswith(("http://", "https://"))]
    authors = _unique_people(people or _dom_authors(index) or ld.organisations)

    category_links = []
    tag_links = []
    for link in index.by_name["a"]:
        rel = attr(link, "rel").lower().split()
        if "category" in rel:
            category_links.append(text_of(link))
        elif "tag" in rel:
            tag_links.append(text_of(link))
    categories = dedupe(
        [*ld.sections, *meta.get("article:section", []), *meta.get("section", []), *meta.get("category", [])],
        limit=10,
        max_length=1000,  # the store truncates; an over-long section is still the section
    ) or dedupe(category_links, limit=10, max_length=60)
    if not categories:
        visible = visible if visible is not None else _visible_date(index)
        categories = [visible[1]] if visible and visible[1] else []

    tags = dedupe([*ld.keywords, *meta.get("article:tag", []), *tag_links], limit=30, max_length=60)
    if not tags:
        tags = dedupe(
            split_keywords(meta.get("news_keywords", []) + meta.get("keywords", [])), limit=30, max_length=60
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
        published_has_time=published_has_time,
        updated=updated_found[0] if updated_found else None,
        updated_has_time=updated_found[1] if updated_found else True,
        authors=authors,
        categories=[clean_value(c) for c in categories if clean_value(c)],
        tags=tags,
        image=image,
        description=description,
        language=_language(index, meta, ld.language),
        canonical_url=_canonical(index, meta, ld.url, url, base),
        site_name=clean_value(site_name) or None,
        body_text=ld.body,
        base_url=base,
    )
