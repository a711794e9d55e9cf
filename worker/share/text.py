"""How each network counts a post's length, and where links and hashtags sit in it.

* :func:`x_length`: X's weighted count, the twitter-text v3 configuration: NFC first, then every code point
  in 0-4351, 8192-8205, 8208-8223 or 8242-8247 weighs 1 and every other one 2; each emoji sequence weighs 2;
  each URL (also the ones twitter-text finds without a scheme, ``example.com/path``) weighs 23.
  The URL grammar with its TLD list and the emoji list (Unicode 12) are read from ``twitter-text-parser``
  (a run-time dependency: they are data we would otherwise have to copy); the counting is ours, about 20x
  faster than its ``parse_tweet`` (whose emoji scan tries 2,500 alternatives at every position) and equal to
  it on the fixture table and on random mixtures (``tests/share/test_share_text.py``).
* :func:`mastodon_length`: Mastodon's ``StatusLengthValidator``: grapheme clusters of the text after every
  scheme URL is replaced by ``url_chars`` characters and every ``@user@domain`` by ``@user``.
* :func:`grapheme_length` / :func:`utf8_length`: Bluesky's two limits (300 graphemes, 3,000 bytes).
* :func:`utf16_length` / :func:`telegram_length`: Telegram's count (UTF-16 code units after entity parsing).
* :func:`find_urls`: the http(s) URLs Mastodon links (twitter-text's domains, Mastodon's path rules:
  trailing punctuation left out, balanced parentheses kept).
* :func:`bluesky_facets`: link and hashtag facets with UTF-8 byte offsets, as the official
  ``@atproto/api`` ``detectFacets`` finds them.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import cache
from typing import Any, NamedTuple

import regex

# twitter-text v3 (`config.defaults`): weights are in hundredths; code points in these ranges weigh 100.
X_WEIGHTED_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
X_URL_LENGTH = 23
X_EMOJI_WEIGHT = 2
X_MAX_LENGTH = 280

_X_HEAVY = re.compile("[^" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in X_WEIGHTED_RANGES) + "]")
_LINE_ENDINGS = re.compile(r"\r\n|\r")
_GRAPHEME = regex.compile(r"\X")


class _XTables(NamedTuple):
    extract_urls: Any
    multi: frozenset[str]
    longest: dict[str, int]
    single: re.Pattern[str]
    candidate: re.Pattern[str]


@cache
def _x_tables() -> _XTables:
    """twitter-text's URL extractor and emoji list, loaded on first use (importing costs 0.15 s)."""
    # Lazy: importing twitter-text takes 0.15-0.6 s, and only X's endpoint needs it.
    from twitter_text.extract_urls import extract_urls_with_indices  # noqa: PLC0415
    from twitter_text.regexp import emoji  # noqa: PLC0415

    multi: set[str] = set()
    longest: dict[str, int] = {}
    for entry in emoji.emoji_list:
        codes = entry.codepoint.split()
        if len(codes) > 1:
            sequence = "".join(chr(int(code, 16)) for code in codes)
            multi.add(sequence)
            longest[sequence[0]] = max(longest.get(sequence[0], 0), len(sequence))
    # Their own character class, read back range by range, not re-derived: what their folding yields counts.
    single_class = emoji.single_codepoint_emoji_raw
    starts = {first for first in longest if not first.isascii()}
    for low, high in re.findall(r"\\U([0-9a-fA-F]{8})(?:-\\U([0-9a-fA-F]{8}))?", single_class):
        starts.update(chr(code) for code in range(int(low, 16), int(high or low, 16) + 1))
    # An ASCII character only starts a keycap: look at the next character before trying the sequence list.
    ascii_firsts = "".join(sorted(first for first in longest if first.isascii()))
    seconds = "".join(sorted({sequence[1] for sequence in multi if sequence[0].isascii()}))
    return _XTables(
        extract_urls=extract_urls_with_indices,
        multi=frozenset(multi),
        longest=longest,
        single=re.compile(f"[{single_class}]"),
        candidate=re.compile(f"[{re.escape(ascii_firsts)}](?=[{seconds}])|[{_char_class(starts)}]"),
    )


def _char_class(chars: set[str]) -> str:
    """The body of a character class for ``chars``, consecutive code points folded into ranges (``re`` tests
    ranges one by one, so 150 ranges instead of 2,700 characters is what keeps the scan fast)."""
    ranges: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )


def _emoji_spans(text: str, tables: _XTables) -> dict[int, int]:
    """``start -> end`` of the emoji twitter-text sees: at each position the longest listed sequence, else a
    single emoji code point, scanning left to right without overlap (what its alternation regex does)."""
    spans: dict[int, int] = {}
    size = len(text)
    search = tables.candidate.search
    pos = 0
    while (found := search(text, pos)) is not None:
        start = found.start()
        end = 0
        for width in range(min(tables.longest.get(text[start], 0), size - start), 1, -1):
            if text[start : start + width] in tables.multi:
                end = start + width
                break
        if not end and tables.single.match(text, start):
            end = start + 1
        if end:
            spans[start] = end
            pos = end
        else:
            pos = start + 1
    return spans


def _x_plain(text: str, start: int, end: int) -> int:
    return end - start + len(_X_HEAVY.findall(text, start, end))


def x_length(text: str) -> int:
    """X's weighted length (twitter-text v3): see the module docstring."""
    text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = _LINE_ENDINGS.sub("\n", text)
    if text.isascii() and "." not in text:
        return len(text)  # no URL and no emoji (every emoji has a non-ASCII code point)
    tables = _x_tables()
    # start -> where counting resumes; a URL wins over an emoji at the same start, as in parse_tweet.
    jumps = {start: (end, X_EMOJI_WEIGHT) for start, end in _emoji_spans(text, tables).items()}
    if "." in text:
        for entity in tables.extract_urls(text):
            start = entity["indices"][0]
            jumps[start] = (start + len(entity["url"]), X_URL_LENGTH)
    length = 0
    pos = 0
    for start in sorted(jumps):
        if start < pos:
            continue  # inside a URL or emoji already counted
        end, weight = jumps[start]
        length += _x_plain(text, pos, start) + weight
        pos = end
    return length + _x_plain(text, pos, len(text))


def grapheme_length(text: str) -> int:
    """The number of extended grapheme clusters (what a reader sees as characters)."""
    if text.isascii():
        return len(text) - text.count("\r\n")
    return len(_GRAPHEME.findall(text))


def utf8_length(text: str) -> int:
    """The number of UTF-8 bytes."""
    return len(text.encode("utf-8"))


def utf16_length(text: str) -> int:
    """The number of UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# Telegram HTML parse mode: tags go, the named entities &lt; &gt; &amp; &quot; and numeric ones are decoded;
# any other '&' stays as it is. Attribute values may hold '>' when quoted.
_TELEGRAM_TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
_TELEGRAM_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")


def telegram_text(html_text: str) -> str:
    """The text Telegram keeps from an HTML-parse-mode message: tags removed, entities decoded."""
    stripped = _TELEGRAM_TAG.sub("", html_text)
    return _TELEGRAM_ENTITY.sub(lambda m: html.unescape(m.group(0)), stripped)


def telegram_length(html_text: str) -> int:
    """Telegram's length of an HTML-parse-mode message: UTF-16 code units of :func:`telegram_text`."""
    return utf16_length(telegram_text(html_text))


# Mastodon links URLs with twitter-text's grammar, patched in config/initializers/twitter_regex.rb:
# any non-space path character except <>()?, parentheses only balanced (one level of nesting), a path ends
# on a character that does not close a sentence; a query ends on a letter, digit or one of _&=#/-.
_UCHARS = (
    "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd"
    "\U00030000-\U000dfffd\U000e1000-\U000efffd\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
)
_PATH_CHAR = r"[^\s<>()?]"
_PARENS = rf"\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*)\)"
# The last character of a path: a character that does not close a sentence, or the ')' of a balanced group
# (the token loop below only ever takes a ')' as the end of such a group).
_PATH_END = r"""[^\s(?!*"'「」<>;:=,.$%\[\]~&|@]"""
_QUERY = rf"\?[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@^{_UCHARS}]*[a-z0-9_&=#/\-{_UCHARS}]"
_PRECEDING = r"(?<![A-Za-z0-9@\uff20$#\uff03\ufffe\ufeff\uffff])"


@cache
def _url_pattern() -> regex.Pattern[str]:
    from twitter_text.regexp.valid_domain import valid_domain  # noqa: PLC0415  (lazy: see _x_tables)

    # The path is matched atomically token by token, then cut back to its last ending character: the same
    # language as Mastodon's nested-star regex, without its backtracking on long unlinkable tails.
    return regex.compile(
        rf"{_PRECEDING}https?://(?:{valid_domain.pattern})(?::[0-9]+)?"
        rf"(?:/(?:(?>{_PATH_CHAR}|{_PARENS})*(?<={_PATH_END}))?)?(?:{_QUERY})?",
        regex.IGNORECASE,
    )


def find_urls(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` code-point spans of the http(s) URLs Mastodon would link in ``text``."""
    if "://" not in text:
        return []
    return [m.span() for m in _url_pattern().finditer(text)]


# Account::MENTION_RE, and twitter-text's end_mention_match (a mention glued to '@', an accented letter or
# '://' is not one).
_MENTION = regex.compile(
    r"(?<![=/\w])@((?:[a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w+)?)"
    r"(?![@\uff20\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f]|://)",
    regex.IGNORECASE,
)


def mastodon_length(text: str, url_chars: int = 23) -> int:
    """Mastodon's count (``StatusLengthValidator``): graphemes, each URL as ``url_chars``, ``@user@domain``
    as ``@user``."""
    entities: list[tuple[int, int, str]] = [(start, end, "x" * url_chars) for start, end in find_urls(text)]
    if "@" in text:
        for match in _MENTION.finditer(text):
            entities.append((match.start(), match.end(), "@" + match.group(1).split("@")[0]))
    if not entities:
        return grapheme_length(text)
    entities.sort()
    parts: list[str] = []
    pos = 0
    for start, end, replacement in entities:
        if start < pos:
            continue  # overlapping entities: the earlier one wins (Extractor.remove_overlapping_entities)
        parts += (text[pos:start], replacement)
        pos = end
    parts.append(text[pos:])
    return grapheme_length("".join(parts))


# @atproto/api rich-text/util.ts. JavaScript's \s and \d are narrower than Python's: spelled out.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_TAG_STOP = f"{_JS_SPACE}\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_BSKY_TAG = regex.compile(
    rf"(?:^|(?<=[{_JS_SPACE}]))[#\uff03]((?!\ufe0f)[^{_TAG_STOP}]*[^0-9{_TAG_STOP}\p{{P}}]+[^{_TAG_STOP}]*)?"
)
_BSKY_LINK = regex.compile(rf"(?:^|(?<=[{_JS_SPACE}(]))https?://[^{_JS_SPACE}]+", regex.IGNORECASE)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
BSKY_TAG_MAX = 64


def _utf8_offsets(text: str, indexes: list[int]) -> dict[int, int]:
    offsets: dict[int, int] = {}
    pos = byte = 0
    for index in sorted(set(indexes)):
        byte += utf8_length(text[pos:index])
        offsets[index] = byte
        pos = index
    return offsets


def bluesky_facets(text: str) -> list[dict[str, Any]]:
    """``app.bsky.richtext.facet`` records for the links and hashtags in ``text`` (UTF-8 byte offsets
    [byteStart, byteEnd)), found as the official client's ``detectFacets`` finds them. Links without a scheme
    (which it also finds, checked against a TLD list) are left as text: our posts carry full URLs."""
    found: list[tuple[int, int, dict[str, str]]] = []
    for match in _BSKY_LINK.finditer(text):
        start, end = match.span()
        uri = match.group(0)
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        found.append((start, end, {"$type": "app.bsky.richtext.facet#link", "uri": uri}))
    if "#" in text or "\uff03" in text:
        for match in _BSKY_TAG.finditer(text):
            tag = match.group(1)
            if not tag:
                continue
            tag = _TRAILING_PUNCTUATION.sub("", tag.strip(_JS_SPACE))
            # The official client compares JavaScript's length (UTF-16 units): stricter than the lexicon's
            # 64 graphemes, so a tag it accepts is always valid.
            if not tag or utf16_length(tag) > BSKY_TAG_MAX:
                continue
            start = match.start()
            found.append((start, start + 1 + len(tag), {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
    offsets = _utf8_offsets(text, [i for start, end, _ in found for i in (start, end)])
    found.sort(key=lambda item: item[0])
    return [
        {"index": {"byteStart": offsets[start], "byteEnd": offsets[end]}, "features": [feature]}
        for start, end, feature in found
    ]
