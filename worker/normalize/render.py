"""Serialize the cleaned body to flat, sanitized HTML (nh3) and to plain text.

The serializer keeps only the allowed tags and unwraps the rest; text left loose by an unwrapped ``<div>``
is put in a ``<p>`` so that paragraphs survive, and ``<br><br>`` inside such text starts a new paragraph.
It walks the tree with an explicit stack: pages nested thousands of levels deep must not hit recursion
limits, and nesting of kept tags is capped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import nh3

from feeds.content import clean_text
from worker.normalize.tree import Element, parse, tag_name

ALLOWED_TAGS = frozenset(
    "p h2 h3 h4 h5 h6 ul ol li blockquote a img figure figcaption em strong b i code pre br "
    "table thead tbody tfoot tr td th caption".split()
)
_ATTRIBUTES = {
    "a": {"href"},
    "img": {"src", "alt"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
_INLINE = frozenset({"a", "em", "strong", "b", "i", "code", "br", "img"})
# A figure's image sits in it directly (no paragraph around it), its caption follows.
_ACCEPTS_INLINE = frozenset("p h2 h3 h4 h5 h6 li td th figure figcaption pre caption".split())
_RENAME = {"h1": "h2"}
_SKIP = frozenset("script style noscript template head title iframe svg math select".split())
_TEXT_BLOCKS = frozenset(
    "address article aside blockquote body caption dd details div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr ul "
    "center".split()
)
_BLOCKISH = _TEXT_BLOCKS | {"html"}
_MAX_DEPTH = 30
_EMPTY = re.compile(
    r"<(p|h[2-6]|li|strong|em|b|i|a|code|blockquote|figure|figcaption|ul|ol|pre)\b[^>]*>"
    r"(?:\s|<br>)*</\1>"
)
_WHITESPACE = re.compile(r"\s+")


def element_events(root: Element) -> Iterator[tuple[str, Element | str]]:
    """The same walk over an lxml tree: an element's text after its start, its tail after its end."""
    yield "start", root
    if root.text:
        yield "text", root.text
    stack: list[tuple[Element, Iterator[Element]]] = [(root, iter(root))]
    while stack:
        element, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            yield "end", element
            if stack and element.tail:
                yield "text", element.tail
            continue
        if not isinstance(child.tag, str):
            if child.tail:
                yield "text", child.tail
            continue
        if tag_name(child) in _SKIP:
            if child.tail:
                yield "text", child.tail
            continue
        yield "start", child
        if child.text:
            yield "text", child.text
        stack.append((child, iter(child)))


class _Writer:
    """Stateful emitter of flat HTML: tracks kept elements, the implicit paragraph and pending ``<br>``."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.open: list[str] = []
        self.inline_context: list[bool] = []
        self.implicit_at: int | None = None
        self.pending_br = 0

    def in_inline(self) -> bool:
        return self.implicit_at is not None or (bool(self.inline_context) and self.inline_context[-1])

    def open_p(self) -> None:
        if self.implicit_at is None:
            self.out.append("<p>")
            self.implicit_at = len(self.open)

    def close_p(self) -> None:
        if self.implicit_at is not None:
            self.out.append("</p>")
            self.implicit_at = None

    def boundary(self) -> None:
        """A block starts or ends: end loose text here unless it is nested in a kept inline element."""
        self.pending_br = 0
        if self.implicit_at is not None and self.implicit_at == len(self.open):
            self.close_p()
        elif self.in_inline():
            self.out.append(" ")

    def flush_breaks(self) -> None:
        if not self.pending_br:
            return
        if self.pending_br >= 2 and self.implicit_at == len(self.open):
            self.close_p()
            self.open_p()
        else:
            self.out.append("<br>")
        self.pending_br = 0

    def text(self, value: str, preformatted: bool) -> None:
        if not preformatted:
            value = _WHITESPACE.sub(" ", value)
        if not value.strip():
            if self.in_inline() and value:
                self.out.append(" ")
            return
        if not self.in_inline():
            self.open_p()
        self.flush_breaks()
        self.out.append(html.escape(value, quote=False))

    def start(self, tag: Element, name: str) -> bool:
        """Emit a kept tag's opening; False when it is dropped (too deep)."""
        if len(self.open) >= _MAX_DEPTH:
            return False
        if name == "br":
            if self.in_inline():
                self.pending_br += 1
            return False
        if name in _INLINE:
            if not self.in_inline():
                self.open_p()
            self.flush_breaks()
        else:
            self.pending_br = 0
            self.close_p()
        attributes = "".join(
            f' {key}="{html.escape(str(tag.get(key)), quote=True)}"'
            for key in sorted(_ATTRIBUTES.get(name, ()))
            if tag.get(key)
        )
        if name == "img":
            self.out.append(f"<img{attributes}>")
            return False
        self.out.append(f"<{name}{attributes}>")
        context = self.in_inline() if name in _INLINE else name in _ACCEPTS_INLINE
        self.open.append(name)
        self.inline_context.append(context)
        return True

    def end(self) -> None:
        name = self.open.pop()
        self.inline_context.pop()
        if self.implicit_at is not None and self.implicit_at > len(self.open):
            self.close_p()
        if name not in _INLINE:
            self.pending_br = 0
        self.out.append(f"</{name}>")

    def result(self) -> str:
        self.close_p()
        return "".join(self.out)


def flatten(root: Element) -> str:
    """Serialize root's content keeping only allowed tags; unwrapped blocks still separate paragraphs."""
    writer = _Writer()
    emitted: set[Element] = set()
    preformatted = 0
    for kind, item in element_events(root):
        if kind == "text":
            assert isinstance(item, str)
            writer.text(item, preformatted > 0)
            continue
        assert not isinstance(item, str)
        if item is root:
            continue
        raw = tag_name(item)
        name = _RENAME.get(raw, raw)
        if kind == "start":
            if name == "pre":
                preformatted += 1
            if name in ALLOWED_TAGS:
                if writer.start(item, name):
                    emitted.add(item)
            elif raw in _BLOCKISH:
                writer.boundary()
        else:
            if name == "pre":
                preformatted -= 1
            if item in emitted:
                writer.end()
            elif raw in _BLOCKISH:
                writer.boundary()
    return writer.result()


_TAG_SET = set(ALLOWED_TAGS)
_ATTRIBUTE_SETS = {tag: set(names) for tag, names in _ATTRIBUTES.items()}


def _clean(fragment: str) -> str:
    cleaned = nh3.clean(
        fragment,
        tags=_TAG_SET,
        attributes=_ATTRIBUTE_SETS,
        url_schemes={"http", "https", "mailto"},
        strip_comments=True,
        link_rel="noopener noreferrer",
    )
    # What XML cannot carry, C1 controls and bidi overrides go here (after nh3, which decodes
    # character references into them), once per article, so a feed render can trust a stored body
    # (feeds.content.fit_html with sanitized=True skips the scan).
    cleaned = clean_text(cleaned)
    for _ in range(6):
        reduced = _EMPTY.sub("", cleaned)
        if reduced == cleaned:
            break
        cleaned = reduced
    return cleaned.strip()


def sanitize(fragment: str) -> str:
    """Run the HTML through nh3 with the article allow-list, then drop elements left empty.

    Repeated until it no longer changes (twice for nearly every input): nh3 serializes mis-nested input
    (``<li>`` inside ``<li>``) in a form that parses differently again, and sanitizing must be idempotent.
    """
    cleaned = _clean(fragment)
    for _ in range(4):
        again = _clean(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def plain_text(fragment: str) -> str:
    """Plain text of sanitized HTML: one paragraph per block, blank lines between; ``<br>`` is a newline.

    Figure captions are left out: they describe an image, not the story (the article-extraction
    benchmark's human-checked texts leave them out too), and the summary and share text are cut from
    this text.
    """
    if not fragment:
        return ""
    # The sanitized fragment is small and well formed: lxml reads it (and decodes its entities) fast.
    root = parse(f"<html><body>{fragment}</body></html>")
    body = next((e for e in root if tag_name(e) == "body"), root)
    blocks: list[list[str]] = [[]]
    in_caption = 0
    for kind, item in element_events(body):
        if kind == "text":
            assert isinstance(item, str)
            if not in_caption:
                blocks[-1].append(item)
            continue
        assert not isinstance(item, str)
        name = tag_name(item)
        if name == "figcaption":
            in_caption += 1 if kind == "start" else -1
        if name == "br" and kind == "start":
            blocks[-1].append("\n")
        elif name in ("td", "th") and kind == "end":
            blocks[-1].append(" ")
        elif name in _TEXT_BLOCKS and name not in ("td", "th") and blocks[-1]:
            blocks.append([])
    paragraphs = []
    for pieces in blocks:
        lines = [" ".join(line.split()) for line in "".join(pieces).split("\n")]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def render(container: Element) -> tuple[str, str]:
    """Return (sanitized HTML, plain text) for a cleaned body container."""
    content_html = sanitize(flatten(container))
    return content_html, plain_text(content_html)
