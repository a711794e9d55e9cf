"""Length counting and link/hashtag detection per network (``worker/share/text.py``).

X is checked against twitter-text-parser (the twitter-text v3 reference) on the fixture table
``tests/fixtures/share/text/x_length.json`` and on random mixtures of its hard pieces; the other networks
against the rules in their own code (Mastodon's ``StatusLengthValidator``, ``@atproto/api`` ``detectFacets``,
Telegram's HTML parse mode), written out case by case.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from twitter_text import parse_tweet

from worker.share.text import (
    X_MAX_LENGTH,
    bluesky_facets,
    find_urls,
    grapheme_length,
    mastodon_length,
    telegram_length,
    telegram_text,
    utf8_length,
    utf16_length,
    x_length,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "share" / "text" / "x_length.json"
ROWS: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["rows"]


@pytest.mark.parametrize("row", ROWS, ids=[row["what"] for row in ROWS])
def test_x_length_equals_twitter_text(row: dict[str, Any]) -> None:
    assert parse_tweet(row["text"]).weightedLength == row["x_length"]  # the fixture is still the reference's
    assert x_length(row["text"]) == row["x_length"]


def test_x_length_limit_edges() -> None:
    by_what = {row["what"]: row["text"] for row in ROWS}
    assert x_length(by_what["exactly 280: 256 letters, a space and a URL"]) == X_MAX_LENGTH
    assert x_length(by_what["281: one over"]) == X_MAX_LENGTH + 1
    assert x_length(by_what["exactly 280 in CJK"]) == X_MAX_LENGTH
    assert parse_tweet(by_what["exactly 280 in CJK"]).valid
    assert not parse_tweet(by_what["281 in CJK"]).valid


# Pieces that change meaning when glued together: halves of emoji sequences, URL parts, marks.
ATOMS = [
    "\u200d", "\ufe0f", "\u20e3", "🇷", "🇴", "🏽", "👩", "💻", "❤", "🔥", "1", "#", "*", "©",
    "ș", "s", "\u0326", "a", "\u0301", ".", "/", "(", ")", ",", "!", "?", ":", "@", " ", "\n", "\r",
    "example", ".com", ".ro", "https://", "http://", "t.co/", "www.", "日本", "한", "\u1112", "\u1161",
    "م", "\u064e", "क्ष", "…", "\u2013", "_", "-", "=", "&", "%", "~", "+", "$",
]  # fmt: skip


def test_x_length_equals_twitter_text_on_random_mixtures() -> None:
    pieces = ATOMS + [row["text"][:40] for row in ROWS if row["text"]]
    rng = random.Random(20240518)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        assert x_length(text) == parse_tweet(text).weightedLength, repr(text)


def test_x_length_property_with_hypothesis() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    strategies = hypothesis.strategies

    @hypothesis.settings(max_examples=500, deadline=None)
    @hypothesis.given(strategies.lists(strategies.sampled_from(ATOMS)).map("".join) | strategies.text())
    def check(text: str) -> None:
        assert x_length(text) == parse_tweet(text).weightedLength

    check()


@pytest.mark.parametrize(
    ("text", "graphemes"),
    [
        ("👨\u200d👩\u200d👧\u200d👦", 1),  # ZWJ family
        ("👩🏽\u200d💻", 1),
        ("🇷🇴", 1),
        ("🇷🇴🇲🇩", 2),  # regional indicators pair up
        ("🇷🇴🇲", 2),
        ("1\ufe0f\u20e3", 1),
        ("\u1112\u1161\u11ab", 1),  # conjoining jamo make one syllable
        ("한국어", 3),
        ("नमस्ते", 3),  # UAX 29 since Unicode 15.1 keeps the conjunct स्ते together
        ("s\u0326a\u0301", 2),
        ("ș", 1),
        ("a\r\nb", 3),  # CRLF is one cluster
        ("abc", 3),
        ("", 0),
    ],
)
def test_grapheme_length(text: str, graphemes: int) -> None:
    assert grapheme_length(text) == graphemes


@pytest.mark.parametrize(
    ("text", "utf8", "utf16"),
    [("ș", 2, 1), ("日", 3, 1), ("😀", 4, 2), ("🇷🇴", 8, 4), ("a\u0301", 3, 2), ("abc", 3, 3), ("", 0, 0)],
)
def test_utf8_and_utf16_lengths(text: str, utf8: int, utf16: int) -> None:
    assert (utf8_length(text), utf16_length(text)) == (utf8, utf16)


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("Citește https://www.digi24.ro/stiri/a-b-123 acum", ["https://www.digi24.ro/stiri/a-b-123"]),
        (
            "https://a.ro/x. https://a.ro/y, https://a.ro/z! https://a.ro/w?",
            [f"https://a.ro/{c}" for c in "xyzw"],
        ),
        ("https://a.ro/x: https://a.ro/y; https://a.ro/z...", [f"https://a.ro/{c}" for c in "xyz"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar).", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("(vezi https://example.ro/articol)", ["https://example.ro/articol"]),
        ("(vezi https://example.ro/articol).", ["https://example.ro/articol"]),
        ("https://example.ro/a?id=42&utm=x.", ["https://example.ro/a?id=42&utm=x"]),
        ("https://example.ro/a?", ["https://example.ro/a"]),
        ("https://example.ro/", ["https://example.ro/"]),
        ("http://example.com:8080/a#frag", ["http://example.com:8080/a#frag"]),
        ("https://ro.wikipedia.org/wiki/Ștefan_cel_Mare", ["https://ro.wikipedia.org/wiki/Ștefan_cel_Mare"]),
        # Mastodon's ending rule leaves out ASCII punctuation and 「」 only: a closing ” stays in the link.
        ("„https://example.ro/a”", ["https://example.ro/a”"]),
        ("example.com/path www.example.com", []),  # Mastodon links only URLs with a scheme
        ("https://localhost/x https://foo.notatld/x", []),  # twitter-text domains: a known TLD
        ("abchttps://example.com", []),  # glued to a word
        ("<https://example.ro/a>", ["https://example.ro/a"]),
    ],
)
def test_find_urls_as_mastodon_links_them(text: str, urls: list[str]) -> None:
    assert [text[start:end] for start, end in find_urls(text)] == urls


def test_find_urls_stays_linear_on_long_unlinkable_tails() -> None:
    text = "https://example.ro/" + "a." * 20000 + "!"
    (span,) = find_urls(text)
    assert text[span[0] : span[1]].endswith("a.a")


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("Știri bune", 10),
        ("Citește https://www.digi24.ro/stiri/actualitate/ceva-foarte-lung-123456", 8 + 23),
        ("https://a.ro/x.", 24),  # the dot is not part of the URL
        ("example.com/path/that/is/long", 29),  # no scheme: counted as written
        ("cu @alice@mastodon.social azi", 3 + 6 + 4),  # only @username counts
        ("cu @alice azi", 13),
        ("ion@example.com", 15),  # an e-mail address is no mention
        ("👨\u200d👩\u200d👧\u200d👦 🇷🇴", 3),  # graphemes
        ("s\u0326", 1),
    ],
)
def test_mastodon_length(text: str, length: int) -> None:
    assert mastodon_length(text) == length


def test_mastodon_length_uses_the_instance_url_allowance() -> None:
    assert mastodon_length("vezi https://example.ro/articol", url_chars=30) == 5 + 30


def _facet_spans(text: str) -> list[tuple[str, str]]:
    """(feature value, the exact bytes the facet covers) for each facet."""
    spans = []
    raw = text.encode("utf-8")
    for facet in bluesky_facets(text):
        index, (feature,) = facet["index"], facet["features"]
        covered = raw[index["byteStart"] : index["byteEnd"]].decode("utf-8")
        spans.append((feature.get("uri") or "#" + feature["tag"], covered))
    return spans


@pytest.mark.parametrize(
    "text",
    [
        "Ședința de la Timișoara: https://example.ro/știri/ședință?id=1 #Timișoara",
        "مَرْحَبًا بِكُمْ https://example.com/ar #أخبار",
        "👨\u200d👩\u200d👧\u200d👦🇷🇴 https://example.ro/a 👍🏽 #știri",
        "日本語 https://example.jp/日本 #日本語",
    ],
)
def test_bluesky_facet_offsets_cover_exactly_the_link_and_tag(text: str) -> None:
    spans = _facet_spans(text)
    assert len(spans) == 2
    for value, covered in spans:
        assert covered == value
    assert [facet["features"][0]["$type"] for facet in bluesky_facets(text)] == [
        "app.bsky.richtext.facet#link",
        "app.bsky.richtext.facet#tag",
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("https://a.ro/x.", ["https://a.ro/x"]),  # one trailing punctuation mark goes
        ("https://a.ro/x?!", ["https://a.ro/x?"]),  # only one: the official client strips a single mark
        ("(https://a.ro/x)", ["https://a.ro/x"]),  # a ')' without '(' goes
        ("https://en.wikipedia.org/wiki/Foo_(bar)", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("ahttps://a.ro/x", []),
        (
            "#știri!, #2024 #2024a a#tag #",
            ["#știri", "#2024a"],
        ),  # punctuation off, digits only and mid-word no
        ("\uff03全角 #tag\ufe0f #\ufe0fno", ["#全角", "#tag\ufe0f"]),
        ("#" + "a" * 64 + " #" + "b" * 65, ["#" + "a" * 64]),
        ("#a_b-c #x.y", ["#a_b-c", "#x.y"]),
    ],
)
def test_bluesky_facet_rules(text: str, found: list[str]) -> None:
    values = []
    for facet in bluesky_facets(text):
        feature = facet["features"][0]
        values.append(feature.get("uri") or "#" + feature["tag"])
    assert values == found


def test_bluesky_tag_facet_covers_the_hash_as_written() -> None:
    text = "Știri \uff03România"
    (facet,) = bluesky_facets(text)
    index = facet["index"]
    assert text.encode()[index["byteStart"] : index["byteEnd"]].decode() == "\uff03România"
    assert facet["features"][0]["tag"] == "România"


@pytest.mark.parametrize(
    ("html_text", "plain"),
    [
        ("<b>Știri</b> de <i>azi</i>", "Știri de azi"),
        ('<a href="https://example.ro/a?x=1&amp;y=2">citește</a>', "citește"),
        ('<a href="x>y">ș</a>', "ș"),
        ("a &lt; b &gt; c &amp; d &quot;e&quot;", 'a < b > c & d "e"'),
        ("&#351;i &#x219;i &#128512;", "şi și 😀"),
        ('<tg-spoiler>x</tg-spoiler><span class="tg-spoiler">y</span>', "xy"),
        ('<pre><code class="language-python">z</code></pre>', "z"),
        ("<blockquote expandable>citat</blockquote>", "citat"),
    ],
)  # fmt: skip
def test_telegram_text(html_text: str, plain: str) -> None:
    assert telegram_text(html_text) == plain


def test_telegram_length_counts_utf16_after_parsing() -> None:
    assert telegram_length("<b>&#128512;</b> &amp; 🇷🇴") == 2 + 3 + 4
    assert telegram_length("<i>ș</i>" * 10) == 10
