"""The page as one lxml tree: parsing once, and the few tree helpers every stage shares.

The whole page is parsed with lxml (libxml2's HTML parser, an order of magnitude faster than building a
BeautifulSoup tree); metadata and the main-content search work on that tree. Text lengths come from one
post-order pass (:func:`measure`) so that no stage walks a subtree again for each of its ancestors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from lxml import etree

from worker.errors import NormalizeError

Element: TypeAlias = etree._Element

# The plain etree parser, not lxml.html's: lxml.html looks up a Python element class for every proxy it
# creates, which costs more than the whole parse on a large page.
_PARSER = etree.HTMLParser(
    encoding="utf-8",
    remove_comments=True,
    remove_pis=True,
    default_doctype=False,
    no_network=True,
    huge_tree=True,
)
# libxml2 drops everything below its depth limit (2,048 with huge_tree); deeper pages are flattened first.
MAX_DEPTH = 1000
_TAG = re.compile(r"<(/?)([A-Za-z][\w:-]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def _flatten_deep(markup: str, limit: int = MAX_DEPTH) -> str:
    """Drop the tags nested deeper than ``limit`` (their text stays), in one linear scan."""
    out: list[str] = []
    depth = 0
    pos = 0
    for match in _TAG.finditer(markup):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID or self_closing:
            continue
        if closing:
            depth = max(0, depth - 1)
            keep = depth < limit
        else:
            keep = depth < limit
            depth += 1
        if not keep:
            out.append(markup[pos : match.start()])
            out.append(" ")
            pos = match.end()
    out.append(markup[pos:])
    return "".join(out)


def parse(markup: str) -> Element:
    """Parse page markup into an lxml tree rooted at ``<html>``; NormalizeError when nothing parses."""
    try:
        root = etree.fromstring(markup.encode("utf-8", "replace"), parser=_PARSER)
        if any("depth" in entry.message for entry in _PARSER.error_log):
            root = etree.fromstring(_flatten_deep(markup).encode("utf-8", "replace"), parser=_PARSER)
    except (etree.ParserError, ValueError) as error:
        raise NormalizeError(f"unparsable HTML: {error}") from error
    if root is None:
        raise NormalizeError("unparsable HTML: empty document")
    return root


def tag_name(element: Element) -> str:
    """Tag name, lower case as the HTML parser gives it ("" for comments and other non-element nodes)."""
    tag = element.tag
    return tag if isinstance(tag, str) else ""


def new_element(name: str) -> Element:
    """A fresh, detached element."""
    return etree.Element(name)


def unwrap(element: Element) -> None:
    """Replace an element by its content (text, children and tail stay where they were)."""
    parent = element.getparent()
    if parent is None:
        return
    index = parent.index(element)
    children = list(element)
    text, tail = element.text or "", element.tail or ""
    if children:
        children[-1].tail = (children[-1].tail or "") + tail
    else:
        text += tail
    if text:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + text
        else:
            parent.text = (parent.text or "") + text
    parent.remove(element)
    for offset, child in enumerate(children):
        parent.insert(index + offset, child)


def elements(root: Element) -> Iterator[Element]:
    """Every element under root (root included) in document order, comments and PIs left out."""
    return root.iter(etree.Element)


def attr(element: Element, name: str) -> str:
    """An attribute value, "" when missing."""
    value = element.get(name)
    return value if value is not None else ""


def classes(element: Element) -> list[str]:
    """The element's class names."""
    value = element.get("class")
    return value.split() if value else []


def squash(value: str | None) -> str:
    """Collapse all whitespace runs (including NBSP) into single spaces and strip the ends."""
    return " ".join(value.split()) if value else ""


def text_of(element: Element) -> str:
    """Visible text of an element with whitespace collapsed (inline boundaries become spaces)."""
    return " ".join(" ".join(element.itertext(etree.Element)).split())


def remove(element: Element) -> None:
    """Take an element out of the tree, keeping its tail text in place."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def attached(element: Element, root: Element) -> bool:
    """True while the element is still under root (it or an ancestor was not removed)."""
    node: Element | None = element
    while node is not None:
        if node is root:
            return True
        node = node.getparent()
    return False


@dataclass
class Measure:
    """Text, link-text, paragraph and image counts of one subtree."""

    text: int = 0
    links: int = 0
    paragraphs: int = 0
    images: int = 0

    @property
    def density(self) -> float:
        """Share of the text that sits inside links."""
        return self.links / self.text if self.text else 0.0


def _length(value: str | None) -> int:
    """Characters of a text node once whitespace is collapsed, plus one for the space that joins it."""
    if not value:
        return 0
    squashed = " ".join(value.split())
    return len(squashed) + 1 if squashed else 0


def measure(root: Element) -> dict[Element, Measure]:
    """Measures for every element under root, in one linear post-order pass.

    The dictionary keeps the element proxies alive, so they can be used as keys while it lives.
    """
    nodes = list(elements(root))
    measures: dict[Element, Measure] = {node: Measure() for node in nodes}
    for node in reversed(nodes):
        own = measures[node]
        own.text += _length(node.text)
        name = tag_name(node)
        if name == "a":
            own.links = own.text
        elif name == "p" and own.text >= 20:
            own.paragraphs += 1
        elif name == "img":
            own.images += 1
        if node is root:
            continue
        parent = node.getparent()
        if parent is None:
            continue
        total = measures.get(parent)
        if total is None:
            continue
        total.text += own.text + _length(node.tail)
        total.links += own.links
        total.paragraphs += own.paragraphs
        total.images += own.images
    return measures
