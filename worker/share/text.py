"""How each network counts a post's length, and where links and hashtags sit in it.

* :func:`mastodon_length`: code points, every URL counted as ``url_chars`` (23 by default; the
  instance says in ``/api/v2/instance``).
* :func:`x_length`: X's weighted count (the twitter-text v3 rules).
* :func:`grapheme_length` / :func:`utf8_length`: Bluesky's two limits (300 graphemes, 3,000 bytes).
* :func:`utf16_length`: Telegram's count (UTF-16 code units after entity parsing).
* :func:`bluesky_facets`: link and hashtag facets with UTF-8 byte offsets.
"""

from __future__ import annotations

import re
from typing import Any

import regex

# A URL as the networks' linkifiers see it: an explicit scheme, up to whitespace; trailing
# punctuation that usually closes a sentence is not part of it.
URL_PATTERN = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]}…]")
HASHTAG_PATTERN = regex.compile(r"(?:^|(?<=\s))#([\p{L}\p{M}\p{N}_]*\p{L}[\p{L}\p{M}\p{N}_]*)")


def find_urls(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` code-point spans of the URLs in ``text``."""
    return [m.span() for m in URL_PATTERN.finditer(text)]


def mastodon_length(text: str, url_chars: int = 23) -> int:
    """Mastodon's count: code points, each URL as ``url_chars``."""
    length = len(text)
    for start, end in find_urls(text):
        length += url_chars - (end - start)
    return length


def grapheme_length(text: str) -> int:
    """The number of extended grapheme clusters (what a reader sees as characters)."""
    return len(regex.findall(r"\X", text))


def utf8_length(text: str) -> int:
    """The number of UTF-8 bytes."""
    return len(text.encode("utf-8"))


def utf16_length(text: str) -> int:
    """The number of UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def x_length(text: str) -> int:
    """X's weighted length: see the module docstring."""
    # Placeholder weighting until the full twitter-text rules land: URLs 23, BMP Latin 1, else 2.
    length = 0
    spans = find_urls(text)
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        for char in text[pos:start]:
            code = ord(char)
            length += 1 if code <= 0x10FF or 0x2000 <= code <= 0x200D or 0x2010 <= code <= 0x201F else 2
        if start < end:
            length += 23
        pos = end
    return length


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def bluesky_facets(text: str) -> list[dict[str, Any]]:
    """``app.bsky.richtext.facet`` records for the links and hashtags in ``text`` (byte offsets)."""
    facets: list[dict[str, Any]] = []
    for start, end in find_urls(text):
        facets.append(
            {
                "index": {"byteStart": _byte_offset(text, start), "byteEnd": _byte_offset(text, end)},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": text[start:end]}],
            }
        )
    for match in HASHTAG_PATTERN.finditer(text):
        start, end = match.start(0), match.end(0)
        if text[start] != "#":
            start = text.index("#", start)
        facets.append(
            {
                "index": {"byteStart": _byte_offset(text, start), "byteEnd": _byte_offset(text, end)},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": match.group(1)}],
            }
        )
    facets.sort(key=lambda f: f["index"]["byteStart"])
    return facets
