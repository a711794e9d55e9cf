"""Item text made safe and small before it reaches any serializer.

Everything here is pure and deterministic (same input, same output), so renders keep stable ETags.

- :func:`clean_text` drops what XML 1.0 cannot carry (C0 controls, surrogates, U+FFFE/F), the C1
  controls and the bidi embedding/override/isolate controls that let a title display as something
  other than what it says ("Trojan Source"); marks such as RLM stay, ``dir`` attributes carry RTL.
- :func:`plain_text` turns a title or summary into plain text: HTML elements (and the bodies of
  scripts, styles and frames) go, everything else, a literal ``<3`` included, stays as text.
- :func:`sanitize_html` keeps a body's structure but nothing executable (nh3: no scripts, no event
  handlers, only http/https/mailto links).
- :func:`fit_html` applies the per-item size budget: a body over it is cut at a block boundary and
  ends with a "Read the full story" link to the original.
"""

from __future__ import annotations

import html
import re

import lxml.html
import nh3
from lxml import etree

READ_MORE = "Read the full story"
EXCERPT_CHARS = 280

_XML_ILLEGAL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_WHITESPACE = re.compile(r"\s+")
# Elements whose content is code or a separate document, not text: dropped with their bodies.
_OPAQUE = r"script|style|iframe|frame|frameset|object|embed|noscript|template|textarea|svg|math|xmp"
_OPAQUE_BLOCK = re.compile(rf"<\s*({_OPAQUE})\b.*?(?:<\s*/\s*\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_HTML_NAMES = (
    "a|abbr|acronym|address|applet|area|article|aside|audio|b|base|basefont|bdi|bdo|bgsound|big|blink|"
    "blockquote|body|br|button|canvas|caption|center|cite|code|col|colgroup|data|datalist|dd|del|details|"
    "dfn|dialog|dir|div|dl|dt|em|fieldset|figcaption|figure|font|footer|form|h[1-6]|head|header|hgroup|"
    "hr|html|i|img|image|input|ins|isindex|kbd|keygen|label|legend|li|link|listing|main|map|mark|marquee|"
    "menu|meta|meter|nav|nobr|ol|optgroup|option|output|p|param|picture|plaintext|pre|progress|q|rp|rt|"
    "rtc|ruby|s|samp|section|select|slot|small|source|span|strike|strong|sub|summary|sup|table|tbody|td|"
    "tfoot|th|thead|time|title|tr|track|tt|u|ul|var|video|wbr|" + _OPAQUE
)
_HTML_TAG = re.compile(rf"<\s*/?\s*(?:{_HTML_NAMES})(?=[\s/>])[^>]*(?:>|\Z)", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)|<!(?!\[CDATA\[)[^>]*>|<\?[^>]*>", re.DOTALL)
_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map"}
# "*": attributes every element may carry; dir keeps right-to-left paragraphs right-to-left.
_ALLOWED_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()} | {
    "*": {"dir", "lang", "title"}
}
_URL_SCHEMES = {"http", "https", "mailto"}
_WRAPPERS = {"div", "article", "section", "main", "body", "span"}


def clean_text(value: str | None) -> str:
    """``value`` without XML-illegal characters, C1 controls and bidi overrides."""
    if not value:
        return ""
    if value.isprintable():
        # Every character the pattern drops is a control, format, surrogate or noncharacter, none
        # of which str.isprintable accepts (tests/feeds/test_feed_content.py checks all of them):
        # the check costs a third of the regex scan.
        return value
    return _XML_ILLEGAL.sub("", value)


def clean_line(value: str | None) -> str:
    """:func:`clean_text` on one line: runs of whitespace become one space, ends stripped."""
    return _WHITESPACE.sub(" ", clean_text(value)).strip()


def plain_text(value: str | None) -> str:
    """``value`` as one line of plain text with every HTML element (and script bodies) removed.

    Repeated until nothing changes, so ``<scr<script>ipt>`` cannot reassemble into a tag. Text that
    merely looks like markup to a human (``<3``, ``a < b``, ``<finala>``) is kept: it is escaped by
    each serializer, never interpreted.
    """
    if not value:
        return ""
    if value.isprintable():
        # Nothing for clean_text to drop, and no whitespace but " " (str.isprintable refuses the
        # rest): a title or summary with neither markup nor doubled or outer spaces is returned as is.
        if "<" not in value:
            if "  " in value or value[0] == " " or value[-1] == " ":
                return " ".join(value.split())
            return value
        text = value
    else:
        text = clean_text(value)
        if "<" not in text:
            # Every pattern below starts at a "<": most titles and summaries have none.
            return " ".join(text.split())
    for _ in range(5):
        stripped = _HTML_TAG.sub(" ", _OPAQUE_BLOCK.sub(" ", _COMMENT.sub(" ", text)))
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split())


def sanitize_html(value: str) -> str:
    """``value`` with nothing executable: nh3's allowlist, http/https/mailto URLs, ``rel=noopener``."""
    return nh3.clean(
        value,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        generic_attribute_prefixes=None,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        # Bodies arrive with absolute URLs from the normalizer; a relative one would resolve against
        # the feed's URL in a reader, so it is dropped rather than guessed.
        url_relative="deny",
    ).strip()


def html_excerpt(content_html: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``content_html``'s text, cut at a word and ended with ``…``."""
    try:
        text = lxml.html.fromstring(content_html).text_content()
    except (etree.ParserError, ValueError):
        return ""
    # Only the words that can reach the excerpt are joined (bodies run to many KB of text).
    words: list[str] = []
    used = 0
    for word in clean_text(text).split():
        words.append(word)
        used += len(word) + 1
        if used > limit + 1:
            break
    text = " ".join(words)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def read_more(url: str | None) -> str:
    """The paragraph that ends a cut body: a link to the original when there is one."""
    if not url:
        return f"<p>{READ_MORE} at the source.</p>"
    return f'<p><a href="{html.escape(url)}">{READ_MORE}</a></p>'


def excerpt_body(content_html: str, url: str | None) -> str:
    """A short body (excerpt + link) used once a feed's size budget is spent."""
    text = html_excerpt(content_html)
    return (f"<p>{html.escape(text, quote=False)}</p>" if text else "") + read_more(url)


def _blocks(fragment: str) -> tuple[str, list[etree._Element]]:
    """The leading text and the top-level blocks of ``fragment``, looking inside single wrappers."""
    parts = lxml.html.fragments_fromstring(fragment)
    lead = parts[0] if parts and isinstance(parts[0], str) else ""
    elements: list[etree._Element] = [p for p in parts if not isinstance(p, str)]
    while len(elements) == 1 and not lead.strip() and elements[0].tag in _WRAPPERS and len(elements[0]):
        wrapper = elements[0]
        lead = wrapper.text or ""
        elements = list(wrapper)
    return lead, elements


def fit_html(
    content_html: str, max_bytes: int, url: str | None, *, sanitized: bool = False
) -> tuple[str, bool]:
    """Sanitize ``content_html`` and keep it within ``max_bytes`` UTF-8 bytes; return ``(html, cut)``.

    A body over budget keeps its leading blocks that fit whole (never half a paragraph or an open
    tag) and ends with :func:`read_more`. Only the first ``2 * max_bytes`` characters are parsed, so a
    3 MB body costs no more than one at the budget.

    ``sanitized=True`` says the caller's body already went through an nh3 allowlist no wider than
    :func:`sanitize_html`'s (the normalizer's, for stored articles), so it is not sanitized again:
    that second nh3 pass was most of a cold render. A body cut to the parse prefix is sanitized
    anyway: the cut may fall inside an attribute value, and the sanitizer closes whatever it opened.
    """
    # A sanitized body is also clean text already (the normalizer's sanitize ends with clean_text).
    text = content_html if sanitized else clean_text(content_html)
    cut = len(text) > 2 * max_bytes
    if cut:
        # Cut before a tag starts so the sanitizer never sees half an attribute.
        end = text.rfind("<", 0, 2 * max_bytes)
        text = text[: end if end > 0 else 2 * max_bytes]
    clean = text.strip() if sanitized and not cut else sanitize_html(text)
    # UTF-8 takes at most 4 bytes per code point: most bodies are under budget without encoding.
    if not cut and (4 * len(clean) <= max_bytes or len(clean.encode("utf-8")) <= max_bytes):
        return clean, False
    tail = read_more(url)
    budget = max_bytes - len(tail.encode("utf-8"))
    try:
        lead, elements = _blocks(clean)
    except (etree.ParserError, ValueError):
        lead, elements = "", []
    if cut and len(elements) > 1:
        elements = elements[:-1]  # the block the prefix cut ran into may be incomplete
    pieces: list[str] = []
    used = 0
    if lead.strip():
        lead_html = html.escape(lead, quote=False)
        used = len(lead_html.encode("utf-8"))
        pieces.append(lead_html)
    for element in elements:
        element.tail = None
        piece = etree.tostring(element, encoding="unicode", method="html")
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            break
        pieces.append(piece)
        used += size
    if not pieces or used == 0:
        # Not even the first block fits: fall back to its words.
        words = html_excerpt(clean, limit=max(40, budget // 4))
        pieces = [f"<p>{html.escape(words, quote=False)}</p>"] if words else []
    return "".join(pieces) + tail, True
