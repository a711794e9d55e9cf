"""JSON-LD (schema.org) article data: the best article node of a page's ``ld+json`` blocks, ``@graph`` and
``@id`` references resolved, broken blocks (trailing commas, CDATA wrappers) tolerated."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.normalize.textutil import clean_value, squash

_TRAILING_COMMAS = re.compile(r",\s*([}\]])")
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


def split_keywords(values: Iterable[str]) -> list[str]:
    """Split comma- or semicolon-separated keyword strings."""
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in re.split(r"[,;]", value))
    return [part for part in out if part]


def dedupe(values: Iterable[str], *, limit: int = 50, max_length: int = 100) -> list[str]:
    """Tidy values, dropping empty, over-long and case-insensitive repeats; at most ``limit``."""
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
class LinkedData:
    """What the best JSON-LD article node says (strings as written; dates unparsed)."""

    title: str | None = None
    published: str | None = None
    updated: str | None = None
    authors: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    organisations: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    image: str | None = None
    description: str | None = None
    language: str | None = None
    url: str | None = None
    site_name: str | None = None
    body: str | None = None


def linked_data(blocks: Sequence[str]) -> LinkedData:
    """Parse the ``ld+json`` blocks and read the highest-ranked article node."""
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
    out = LinkedData(site_name=site_name)
    if best is None:
        return out
    node = best[2]
    is_page = min(_ARTICLE_TYPES[t] for t in _types(node) if t in _ARTICLE_TYPES) >= _WEBPAGE_RANK
    if not is_page:
        out.title = next(iter(_ld_strings(node.get("headline") or node.get("name"), index)), None)
        body = node.get("articleBody")
        # Kept raw (not squashed): its blank lines are the only paragraph breaks it has.
        out.body = html_lib.unescape(body).strip() or None if isinstance(body, str) else None
        out.sections = _ld_strings(node.get("articleSection"), index)
        out.keywords = split_keywords(_ld_strings(node.get("keywords"), index))
        out.image = _ld_image(node.get("image") or node.get("thumbnailUrl"), index)
        out.description = next(iter(_ld_strings(node.get("description"), index)), None)
        publisher = _ld_strings(node.get("publisher"), index)
        out.site_name = publisher[0] if publisher else site_name
    out.published = next(iter(_ld_strings(node.get("datePublished") or node.get("dateCreated"), index)), None)
    out.updated = next(iter(_ld_strings(node.get("dateModified"), index)), None)
    out.authors, out.organisations = _authors(node.get("author") or node.get("creator"), index)
    out.language = next(iter(_ld_strings(node.get("inLanguage"), index)), None)
    url = node.get("url") or node.get("mainEntityOfPage")
    out.url = next(iter(_ld_strings(url, index, "@id")), None)
    return out


_ORGANISATION_TYPES = frozenset({"organization", "newsmediaorganization", "corporation", "organisation"})


def _authors(value: Any, index: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Split JSON-LD authors into people and organisations (an org is only a fallback byline)."""
    people: list[str] = []
    organisations: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items[:20]:
        node = item
        if isinstance(item, dict) and "name" not in item and isinstance(item.get("@id"), str):
            node = index.get(item["@id"], item)
        names = _ld_strings(node, index)
        names = [n for n in names if not n.lower().startswith(("http://", "https://"))]
        if isinstance(node, dict) and _types(node) & _ORGANISATION_TYPES:
            organisations.extend(names)
        else:
            people.extend(names)
    return people, organisations
