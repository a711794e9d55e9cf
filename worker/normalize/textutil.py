"""Small text helpers shared by the normalization modules."""

from __future__ import annotations

import html
import unicodedata

from bs4 import Tag

_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


def squash(value: str | None) -> str:
    """Collapse all whitespace runs (including NBSP) into single spaces and strip the ends."""
    return " ".join(value.split()) if value else ""


def clean_value(value: object) -> str:
    """A metadata value as tidy text: entities decoded, NFC, whitespace collapsed."""
    if not isinstance(value, str):
        return ""
    return squash(unicodedata.normalize("NFC", html.unescape(value)))


def same_text(first: str, second: str) -> bool:
    """Compare two headings loosely: case, whitespace, typographic quotes and trailing punctuation."""
    return comparable(first) == comparable(second) and bool(comparable(first))


def comparable(value: str) -> str:
    """The loose form used by :func:`same_text`."""
    return squash(unicodedata.normalize("NFKC", value).translate(_QUOTES)).casefold().rstrip(" .:!?")


def element_text(tag: Tag) -> str:
    """Visible text of an element with whitespace collapsed (inline boundaries become spaces)."""
    return squash(tag.get_text(" "))


def link_density(tag: Tag, text_length: int | None = None) -> float:
    """Share of an element's text that sits inside links."""
    total = text_length if text_length is not None else len(element_text(tag))
    if total == 0:
        return 0.0
    linked = sum(len(element_text(a)) for a in tag.find_all("a"))
    return min(1.0, linked / total)
