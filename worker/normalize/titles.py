"""The headline: JSON-LD ``headline``, ``og:title``, ``<title>`` and the visible ``<h1>``, reconciled.

Page titles carry the site name and often the section ("Site | Section | Headline", "Headline - Site").
The segment that is the headline is found by agreement between the sources rather than by a list of
site names: the visible ``h1`` wins when it agrees with ``og:title``/``headline``/``<title>``; otherwise the
segments naming the site (``og:site_name``, the host name) or reading like a label are dropped.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from worker.normalize.textutil import comparable, same_text

_SEPARATORS = re.compile(r"\s+(?:\||-|\u2013|\u2014|::|\u00b7|\u2022|\u00ab|\u00bb)\s+")
_WORD = re.compile(r"\w+")


def _words(value: str) -> set[str]:
    return set(_WORD.findall(comparable(value)))


def _agrees(heading: str, other: str | None) -> bool:
    """The heading is the other title, is inside it, or shares most of its words."""
    if not other:
        return False
    if same_text(heading, other):
        return True
    h, o = comparable(heading), comparable(other)
    if len(h) >= 10 and h in o:
        return True
    hw, ow = _words(heading), _words(other)
    return bool(hw) and len(hw & ow) >= 0.8 * max(len(hw), 1) and len(hw & ow) >= 0.6 * max(len(ow), 1)


def _names_site(segment: str, site_name: str | None, host: str) -> bool:
    key = comparable(segment)
    if not key:
        return True
    if site_name and (
        same_text(segment, site_name) or comparable(site_name) in key or key in comparable(site_name)
    ):
        return True
    squeezed = re.sub(r"\W+", "", key)
    return len(squeezed) >= 3 and squeezed in host


def strip_site(title: str, site_name: str | None, url: str) -> str:
    """Drop the segments of a title that name the site; keep the longest remaining run as the headline."""
    host = (urlsplit(url).hostname or "").lower().replace("-", "").replace(".", "")
    parts = _SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    kept = [p.strip() for p in parts if not _names_site(p, site_name, host)]
    if not kept:
        return title
    if len(kept) == len(parts):
        # Nothing names the site: drop one short trailing segment ("Headline | Section").
        tail = parts[-1]
        if len(tail) <= 0.4 * len(title) and len(tail.split()) <= 4:
            last = list(_SEPARATORS.finditer(title))[-1]
            return title[: last.start()].strip() or title
        return title
    # "Site | Section | Headline": the headline is the longest of what is left.
    return max(kept, key=len)


def choose(
    *,
    headline: str | None,
    og_title: str | None,
    page_title: str,
    headings: list[str],
    site_name: str | None,
    url: str,
) -> str | None:
    """The article's headline from every source the page offers."""
    headings = [h for h in headings if 3 <= len(h) <= 300]
    declared = [t for t in (headline, og_title, page_title) if t]
    for heading in sorted(headings, key=len, reverse=True):
        if any(_agrees(heading, other) for other in declared):
            return heading
    for candidate in (headline, og_title):
        if candidate:
            return strip_site(candidate, site_name, url)
    if page_title:
        return strip_site(page_title, site_name, url)
    return headings[0] if headings else None
