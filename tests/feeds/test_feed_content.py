"""The fast paths of feeds.content give what the slow paths give.

``clean_text`` returns a string untouched when ``str.isprintable`` accepts it, and ``plain_text``
skips its regexes and its whitespace collapse for printable text without markup or doubled spaces.
Both rest on a property of Python's Unicode tables checked here over every code point: no
character the XML-illegal pattern drops is printable, and the only printable whitespace is " ".
"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import content
from feeds.content import clean_text, plain_text


def test_no_dropped_character_is_printable() -> None:
    dropped = [chr(c) for c in range(sys.maxunicode + 1) if content._XML_ILLEGAL.match(chr(c))]
    # C0 controls but tab/LF/CR, DEL and C1, bidi embeddings/overrides/isolates, surrogates, U+FFFE/F.
    assert len(dropped) == 29 + 33 + 5 + 4 + 2048 + 2
    assert [ch for ch in dropped if ch.isprintable()] == []


def test_the_only_printable_whitespace_is_the_space() -> None:
    printable_space = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace() and chr(c).isprintable()]
    assert printable_space == [" "]


def _slow_plain_text(value: str) -> str:
    """plain_text as it was before its fast path: clean, then (without markup) collapse whitespace."""
    text = content._XML_ILLEGAL.sub("", value)
    if "<" not in text:
        return " ".join(text.split())
    return plain_text("\x00" + value)  # a control forces the general path, and is dropped there


_PIECES = [" ", "  ", "\t", "\n", "\xa0", "\u202e", "\u200f", "<b>", "</b>", "<3", "…", "ș", "\x85"]
_TEXT = st.lists(st.characters(blacklist_categories=["Cs"]) | st.sampled_from(_PIECES), max_size=40).map(
    "".join
)


@settings(max_examples=500, deadline=None)
@given(value=_TEXT)
def test_fast_paths_agree_with_the_general_ones(value: str) -> None:
    assert clean_text(value) == content._XML_ILLEGAL.sub("", value)
    assert plain_text(value) == _slow_plain_text(value)


def test_printable_titles_come_back_as_they_are() -> None:
    title = "Cluj IT Cluster and Rawabi sign a partnership: “a bridge”…"
    assert plain_text(title) is title
    assert plain_text("  spaced   out  ") == "spaced out"
    assert plain_text("a <b>bold</b> claim") == "a bold claim"
