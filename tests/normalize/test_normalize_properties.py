"""Properties of the normalizer on generated input (hypothesis): sanitizing is idempotent, no output can
carry script, event handlers or ``javascript:`` URLs, and no input crashes it (a bounded fuzz run); plus
the bad inputs of issue 6, each of which must give a clear NormalizeError.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from worker.errors import NormalizeError
from worker.normalize import normalize
from worker.normalize.render import sanitize

URL = "https://news.example.org/2019/03/06/story.html"
_JAVASCRIPT = re.compile(r"^\s*javascript:", re.I)


def _dangers(fragment: str) -> list[str]:
    """Script elements, ``on*`` handler attributes and ``javascript:`` URLs in sanitized HTML."""
    found = ["<script"] if "<script" in fragment.lower() else []
    if not fragment.strip():
        return found
    for element in lxml_html.fragment_fromstring(fragment, create_parent="div").iter():
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{element.tag} {name}=")
            if _JAVASCRIPT.search(value):
                found.append(f"{element.tag} {name}={value}")
    return found


_TAGS = [
    "p",
    "div",
    "a",
    "img",
    "script",
    "style",
    "b",
    "span",
    "ul",
    "li",
    "h1",
    "h2",
    "table",
    "td",
    "svg",
    "iframe",
    "form",
    "noscript",
    "article",
    "section",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "br",
]
_ATTRS = [
    ' href="javascript:alert(1)"',
    ' onclick="alert(1)"',
    " onerror=alert(1)",
    ' src="x.png"',
    ' class="share"',
    ' class="article-body"',
    ' style="display:none"',
    ' href="/relative"',
    ' srcset="a.jpg 1x"',
    ' href=" JaVaScRiPt:alert(1)"',
    "",
]
_WORDS = st.sampled_from(
    [
        "Lorem",
        "ipsum,",
        "dolor",
        "sit",
        "amet.",
        "Über",
        "ß",
        "café",
        "عربي",
        "<",
        ">",
        "&amp;",
        "&#x3c;script",
        "javascript:",
        "onload=",
        "</script",
        "<!--",
        "-->",
        "\u0000",
        "\ufffd",
        "\u202e",
    ]
)


@st.composite
def _markup(draw: st.DrawFn, depth: int = 0) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 5 and draw(st.booleans()):
            tag = draw(st.sampled_from(_TAGS))
            attrs = draw(st.sampled_from(_ATTRS))
            inner = draw(_markup(depth + 1))
            closed = draw(st.integers(0, 9)) > 0  # sometimes unclosed
            parts.append(f"<{tag}{attrs}>{inner}" + (f"</{tag}>" if closed else ""))
        else:
            parts.append(" ".join(draw(st.lists(_WORDS, min_size=1, max_size=12))))
    return "".join(parts)


def _page(body: str) -> str:
    return f"<html><head><title>A generated page</title></head><body>{body}</body></html>"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_markup())
def test_sanitizing_twice_changes_nothing(fragment: str) -> None:
    once = sanitize(fragment)
    assert sanitize(once) == once


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_markup())
def test_no_output_holds_script_handlers_or_javascript_urls(fragment: str) -> None:
    assert _dangers(sanitize(fragment)) == []
    try:
        article = normalize(_page(fragment), URL)
    except NormalizeError:
        return
    assert _dangers(article.content_html) == []
    assert article.content_html == sanitize(article.content_html)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_markup().map(_page), st.text(max_size=400), st.binary(max_size=400)))
def test_fuzz_never_crashes(document: str | bytes) -> None:
    """Bounded fuzz run: any input gives an Article or a NormalizeError, nothing else."""
    try:
        article = normalize(document, URL)
    except NormalizeError as error:
        assert str(error)
        return
    assert article.text.strip()
    assert "\n\n\n" not in article.text


# --- the bad inputs of issue 6 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "content_type", "reason"),
    [
        (b"", "text/html", "empty"),
        (b"   \n\t ", "text/html", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "text/html", "binary"),
        (bytes(range(256)) * 40, "text/html; charset=utf-8", "binary"),
        (
            "<html><head><title>Menu</title></head><body><nav><a href='/'>Home</a></nav></body></html>",
            None,
            "no body text",
        ),
    ],
    ids=["empty-body", "whitespace-body", "png-as-html", "binary-as-html", "no-article"],
)
def test_bad_input_is_a_clear_normalize_error(
    document: bytes | str, content_type: str | None, reason: str
) -> None:
    with pytest.raises(NormalizeError, match=reason):
        normalize(document, URL, content_type=content_type)


def test_invalid_utf8_is_read_not_crashed_on() -> None:
    body = "<p>Ein Absatz über die Stadtwerke und ihre Pläne für das nächste Jahr, mit Umlauten.</p>" * 20
    data = f"<html><head><meta charset='utf-8'><title>Stadtwerke</title></head><body>{body}</body></html>"
    # Two stray bytes in a UTF-8 page (a truncated upload, a bad template): still read as UTF-8.
    broken = data.encode("utf-8").replace("ü".encode(), b"\xfc", 1) + b"\xff"
    article = normalize(broken, URL, content_type="text/html; charset=utf-8")
    assert "Stadtwerke und ihre Pläne" in article.text


def test_one_hundred_thousand_nested_tags() -> None:
    text = "The article text that sits below one hundred thousand nested tags is still found. " * 3
    document = "<html><body>" + "<div>" * 100_000 + f"<p>{text}</p>" + "</div>" * 100_000 + "</body></html>"
    article = normalize(document, URL)
    assert "one hundred thousand nested tags is still found" in article.text


def test_unclosed_nesting_of_inline_tags() -> None:
    text = "Inline tags opened a hundred thousand times and never closed must not break the page. "
    document = f"<html><body><p>{text * 2}" + "<b><i>" * 50_000 + f"{text}</p></body></html>"
    article = normalize(document, URL)
    assert "never closed must not break the page" in article.text


_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.characters(blacklist_categories=["Cs"])
        | st.sampled_from(["&#x9f;", "&#x202e;", "\u2066", "\x85", "&#8238;", "\x01", "é"]),
        max_size=30,
    ).map("".join)
)
def test_sanitized_bodies_carry_no_controls_or_bidi_overrides(text: str) -> None:
    """Feeds trust stored bodies (``content_is_clean``): the normalizer must leave nothing XML or readers
    would choke on, including controls spelled as character references, which nh3 decodes."""
    out = sanitize(f"<p>{text}</p><p>Trojan &#x202e;source&#x202c; and &#133;</p>")
    assert not _UNSAFE_TEXT.search(out), out
    assert "source" in out
