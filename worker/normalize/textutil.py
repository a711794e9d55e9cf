"""Small text helpers shared by the normalization modules."""

from __future__ import annotations

import html
import unicodedata

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
