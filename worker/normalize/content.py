"""Find the article body in the parsed page and strip what is not the article, on the lxml tree.

The signals are language-independent wherever possible: the DOM role of an element (tag, ARIA role,
class/id tokens), its text density and link density (from one :func:`~worker.normalize.tree.measure`
pass), and its position relative to the headline. Words are only used for the short lines no structure
gives away ("Advertisement", "Read more"), in :mod:`worker.normalize.boilerplate`, for several languages.

Steps: :func:`prune` drops page furniture; :func:`select_main` scores paragraph containers, takes the best
one and gathers the sibling blocks (also one level up) that read as more of the same article;
:func:`clean_main` removes what sits inside the article column but is not the article.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lxml import etree

from worker.normalize import boilerplate
from worker.normalize.dates import find_date
from worker.normalize.metadata import date_line
from worker.normalize.textutil import same_text
from worker.normalize.tree import (
    Element,
    Measure,
    attached,
    attr,
    elements,
    measure,
    new_element,
    remove,
    tag_name,
    text_of,
    unwrap,
)
from worker.normalize.urls import absolute

_DROP_TAGS = frozenset(
    "script style noscript template iframe frame frameset svg canvas object embed applet button input "
    "select textarea option optgroup label link meta dialog map audio video source track head title base "
    "picture-source".split()
)
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body details dialog dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section table tbody thead tfoot tr td th "
    "ul center menu".split()
)
_PARAGRAPH_TAGS = frozenset({"p", "pre", "td", "div", "section", "blockquote"})

# Class/id parts naming widgets that never hold article text. Matched against whole parts of a
# class name ("social-share" -> "social", "share"), not prefixes: "shareable" or "paywall-body" is content.
_STRONG_PARTS = frozenset(
    "comment comments commentlist disqus share shares sharing sharer sharebar sharedaddy social socials "
    "addtoany a2a relatedposts related recommended recommendations recirculation newsletter subscribe "
    "subscription signup cookie cookies consent gdpr advert advertisement advertising adsense sponsor "
    "sponsored promo promotion outbrain taboola popup modal breadcrumb breadcrumbs teaser teasers "
    "jp-relatedposts most-read mostread trending".split()
)
_WEAK_PARTS = frozenset(
    "ad ads adslot adunit nav navbar navigation menu footer header masthead sidebar widget banner tags "
    "taglist byline author authors autor auteur autore print skip toolbar pagination pager caption credit "
    "credits copyright".split()
)
# Weak parts that only say "caption" or "credit": furniture on their own, part of a figure around an image.
_CAPTION_PARTS = frozenset("caption credit credits copyright".split())
# Where prune keeps a figure's caption while the page is analysed (never serialized: not allowed).
_CAPTION_ATTR = "data-syndicate-caption"
# A class that names the article itself wins over a widget word in the same name ("paywall-content").
_CONTENT_PARTS = frozenset("content body article text story entry post main".split())
_COMMENT_PARTS = frozenset("comment comments commentlist disqus".split())
_TAXONOMY_PREFIXES = ("tag-", "category-", "cat-", "topic-", "section-", "format-", "type-", "status-")
_HIDDEN_CLASSES = frozenset("hidden sr-only screen-reader-text visually-hidden visuallyhidden".split())
_SPLIT = re.compile(r"[\s_\-]+|(?<=[a-z])(?=[A-Z])")
_WEAK_ROLES = frozenset(
    "navigation banner contentinfo complementary search menu menubar toolbar dialog alertdialog".split()
)
_WEAK_TAG_NAMES = frozenset({"nav", "aside", "footer", "header", "form"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)

_POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story", re.I)
_NEGATIVE = re.compile(
    r"hidden|banner|combx|comment|com-|contact|foot|footer|footnote|gdpr|masthead|media|meta|outbrain|promo|"
    r"related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping|tags|tool|widget|cookie|newsletter|"
    r"teaser|caption|credit",
    re.I,
)
_SHARER = re.compile(
    r"facebook\.com/(?:sharer|share\.php|dialog/(?:share|feed))|twitter\.com/(?:intent|share|home\?status)|"
    r"//x\.com/(?:intent|share)|linkedin\.com/(?:sharearticle|sharing|cws/share|shareArticle)|"
    r"pinterest\.[a-z.]+/pin/create|reddit\.com/submit|whatsapp\.com/send|//wa\.me/|whatsapp://send|"
    r"t\.me/share|telegram\.me/share|tumblr\.com/(?:share|widgets/share)|getpocket\.com/(?:save|edit)|"
    r"vk\.com/share|xing\.com/(?:spi/)?share|buffer\.com/add|^mailto:\?|addtoany\.com/share",
    re.I,
)
_LAZY_SRC_ATTRS = (
    "data-src",
    "data-lazy-src",
    "data-original",
    "data-url",
    "data-lazy",
    "data-srcset",
    "srcset",
)
_PLACEHOLDER = re.compile(r"^data:|blank\.(?:gif|png)|spacer\.gif|placeholder|lazy[-_]?load", re.I)
_TABLE_PARTS = frozenset({"td", "th", "li", "tr"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_MAX_LINE = 120


def _is_article_body(element: Element) -> bool:
    return "articlebody" in attr(element, "itemprop").lower().split()


def _hint_parts(element: Element) -> frozenset[str]:
    return _parts(element.get("class") or "", element.get("id") or "")


@lru_cache(maxsize=8192)
def _parts(class_value: str, id_value: str) -> frozenset[str]:
    """Class names and ids with their parts split on "-", "_" and camelCase, lower case."""
    parts: set[str] = set()
    for value in (*class_value.split(), id_value):
        lowered = value.lower()
        # WordPress-style taxonomy classes ("tag-social-media") describe the post, not a widget.
        if lowered and not lowered.startswith(_TAXONOMY_PREFIXES):
            parts.add(lowered)
            parts.update(p.lower() for p in _SPLIT.split(value) if p)
    return frozenset(parts)


_HINT_ATTRS = frozenset({"class", "id", "role", "aria-label", "hidden", "aria-hidden", "style"})


def _junk_kind(element: Element, name: str) -> str | None:
    """'comment', 'strong' (never article text), 'weak' (furniture that only may not be), or None."""
    hints = tuple(item for item in element.items() if item[0] in _HINT_ATTRS)
    if not hints and name not in _HINT_TAGS:
        return None
    return _kind(name, hints)


@lru_cache(maxsize=16384)
def _kind(name: str, hints: tuple[tuple[str, str], ...]) -> str | None:
    """The decision of :func:`_junk_kind` for one tag name and hint attributes (pages repeat them a lot)."""
    if name == "dialog":
        return "strong"
    values = dict(hints)
    parts = _parts(values.get("class", ""), values.get("id", ""))
    if parts:
        if parts & _COMMENT_PARTS:
            return "comment"
        if parts & _STRONG_PARTS and not parts & _CONTENT_PARTS:
            return "strong"
    aria = values.get("aria-label", "")
    if aria and boilerplate.widget_label(aria):
        return "strong"
    if name in _WEAK_TAG_NAMES or values.get("role", "").lower() in _WEAK_ROLES:
        return "weak"
    if parts & _WEAK_PARTS or _HIDDEN_CLASSES.intersection(values.get("class", "").split()):
        return "weak"
    if "hidden" in values or values.get("aria-hidden", "").lower() == "true":
        return "weak"
    style = values.get("style", "")
    if style and _HIDDEN_STYLE.search(style):
        return "weak"
    return None


# Only these tags can be furniture without an attribute saying so.
_HINT_TAGS = frozenset({"nav", "aside", "footer", "header", "form", "dialog"})


def _discount(element: Element, measures: dict[Element, Measure]) -> None:
    """Take a removed element's counts off its ancestors, so one measuring pass serves every stage."""
    gone = measures.get(element)
    if gone is None:
        return
    extra = _tail_length(element)
    for ancestor in element.iterancestors():
        m = measures.get(ancestor)
        if m is None:
            break
        m.text -= gone.text + extra
        m.links -= gone.links
        m.paragraphs -= gone.paragraphs
        m.images -= gone.images


def _tail_length(element: Element) -> int:
    tail = element.tail
    if not tail:
        return 0
    squashed = " ".join(tail.split())
    return len(squashed) + 1 if squashed else 0


def prune(root: Element) -> dict[Element, Measure]:
    """Remove non-content tags and page furniture recognized by tag, role, class/id and aria hints.

    Size guards keep a wrapper that happens to carry a hint (``<div class="has-sidebar">``) from taking
    the article with it: nothing holding the ``<h1>`` or the marked-up article body goes, nothing holding
    most of the page's text, and no widget-named block that is itself dense, link-poor prose. Returns the
    measures of what is left (kept up to date while removing).
    """
    etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    protected = {root}
    for element in root.iter():
        if element.tag == "h1" or ("itemprop" in element.attrib and _is_article_body(element)):
            protected.update(element.iterancestors())
            protected.add(element)
    measures = measure(root)
    total = max(1, measures[root].text)
    for element in list(measures):
        name = element.tag
        if element in protected or name in ("html", "body"):
            continue
        kind = _junk_kind(element, name)
        m = measures[element]
        if (name == "figure" or kind == "weak") and m.images and _set_caption_aside(element, measures):
            continue  # a figure (also one named "wp-caption" and the like): kept with its image
        if kind is None:
            continue
        if kind == "strong" and m.paragraphs >= 3 and m.density < 0.2:
            continue  # a "share"/"promo"-named wrapper around real prose: the article
        limit = 0.8 if kind != "weak" and name not in ("article", "main") else 0.4
        if m.text < limit * total and element.getparent() is not None:
            _discount(element, measures)
            remove(element)
    return measures


def _caption_hint(element: Element) -> bool:
    """True when the class/id words that make an element furniture are only caption or credit words."""
    weak = _hint_parts(element) & _WEAK_PARTS
    return bool(weak) and weak <= _CAPTION_PARTS


def _set_caption_aside(element: Element, measures: dict[Element, Measure]) -> bool:
    """Keep a figure's images and caption, with the caption out of the way of the page analysis.

    Captions and credits are short lines that the boilerplate rules rightly drop anywhere else ("Photo:
    Green Partners" alone is page furniture, and caption paragraphs would sway the choice of the article
    block); inside a figure they describe its image. So a figure with an image (``<figure>``, or a
    caption-named block around one, as WordPress's ``<div class="wp-caption">``) is reduced to its
    images; its caption, credit and any other text beside the image are kept as one line in an
    attribute, and :func:`_restore_captions` gives them back as the ``<figcaption>`` of the figures that
    end up in the article. ``measures`` are kept up to date. False (nothing changed) for no figure.
    """
    m = measures[element]
    if tag_name(element) == "figure":
        if m.text >= 1000:
            return False
    elif tag_name(element) in ("img", "a", "p", "figcaption") or m.text >= 600 or not _caption_hint(element):
        return False
    elif any(not _caption_hint(p) for p in element.iter("p")):
        return False  # a caption-named wrapper of the article itself ("has-captions"): not a figure
    if next(element.iter("img"), None) is None:
        return False
    # The caption first, then the credit, then any other text beside the image.
    pieces: list[str] = []
    for child in list(element.iterdescendants(etree.Element)):
        if not attached(child, element) or next(child.iter("img"), None) is not None:
            continue
        if tag_name(child) == "figcaption" or _caption_hint(child):
            _add_piece(pieces, text_of(child))
            _discount(child, measures)
            remove(child)
    _add_piece(pieces, text_of(element))
    text, links, paragraphs = m.text, m.links, m.paragraphs  # what is left of it goes too
    for node in [element, *element.iterancestors()]:
        counts = measures.get(node)
        if counts is None:
            break
        counts.text -= text
        counts.links -= links
        counts.paragraphs -= paragraphs
    images = list(element.iter("img"))
    element.clear(keep_tail=True)
    element.tag = "figure"
    for image in images:
        image.tail = None
        element.append(image)
    element.set(_CAPTION_ATTR, " ".join(pieces))
    return True


def _add_piece(pieces: list[str], text: str) -> None:
    if text and text not in pieces:
        pieces.append(text)


def _restore_captions(container: Element) -> None:
    """Give each figure that kept its image its caption back (see :func:`_set_caption_aside`)."""
    for figure in list(container.iter("figure")):
        caption = figure.attrib.pop(_CAPTION_ATTR, None)
        if caption and next(figure.iter("img"), None) is not None:
            figcaption = new_element("figcaption")
            figcaption.text = caption
            figure.append(figcaption)


def _initial_score(element: Element, name: str) -> float:
    score = {"div": 5.0, "article": 10.0, "main": 5.0, "pre": 3.0, "td": 3.0, "blockquote": 3.0}.get(
        name, 0.0
    )
    if name in ("address", "ol", "ul", "dl", "dd", "dt", "li", "form"):
        score -= 3
    elif name in _HEADINGS or name == "th":
        score -= 5
    for value in (attr(element, "class"), attr(element, "id")):
        if value:
            if _NEGATIVE.search(value):
                score -= 25
            if _POSITIVE.search(value):
                score += 25
    if _is_article_body(element):
        score += 30
    return score


def _has_block_child(element: Element) -> bool:
    return any(tag_name(child) in _BLOCK_TAGS for child in element)


def _loose_text(element: Element) -> str:
    """Text written straight into a container between its blocks (``text<br><br>text``)."""
    parts = [element.text or ""]
    for child in element:
        name = tag_name(child)
        if name not in _BLOCK_TAGS and name != "a":
            parts.append(text_of(child))
        parts.append(child.tail or "")
    return " ".join(" ".join(parts).split())


def _score(root: Element, measures: dict[Element, Measure]) -> dict[Element, float]:
    scores: dict[Element, float] = {}
    for para in root.iter(*_PARAGRAPH_TAGS):
        name = tag_name(para)
        if name not in _PARAGRAPH_TAGS:
            continue
        if name in ("div", "section") and _has_block_child(para):
            text = _loose_text(para)
            ancestors = [para, *para.iterancestors()]
        else:
            if measures[para].text < 25:
                continue
            text = text_of(para)
            ancestors = list(para.iterancestors())
        if len(text) < 25:
            continue
        points = 1 + text.count(",") + text.count("،") + text.count("\uff0c") + min(len(text) // 100, 3)
        for level, ancestor in enumerate(ancestors):
            if level >= 5 or tag_name(ancestor) == "html":
                break
            if ancestor not in scores:
                scores[ancestor] = _initial_score(ancestor, tag_name(ancestor))
            divider = 1 if level == 0 else 2 if level == 1 else level * 3
            scores[ancestor] += points / divider
    return {element: score * (1 - min(1.0, measures[element].density)) for element, score in scores.items()}


def _pick(root: Element, ranked: list[tuple[float, Element]]) -> Element:
    top_score, top = ranked[0]
    # Several strong candidates under one ancestor: the article is split into blocks, take the ancestor.
    rivals = [set(tag.iterancestors()) for score, tag in ranked[1:5] if score >= 0.75 * top_score]
    if len(rivals) >= 3:
        for parent in top.iterancestors():
            if parent is root or tag_name(parent) in ("body", "html"):
                break
            if sum(parent in ancestors for ancestors in rivals) >= 3:
                return parent
    return top


def _prose(element: Element, measures: dict[Element, Measure]) -> bool:
    """A block of running text: long enough, few links, and ending like a sentence or holding paragraphs."""
    m = measures.get(element)
    if m is None or m.text == 0 or m.density >= 0.25:
        return False
    if m.paragraphs:
        return True
    name = tag_name(element)
    text = text_of(element)
    if name in _HEADINGS:
        return False
    if len(text) > 80:
        return True
    return (
        name == "p" and 0 < len(text) and m.links == 0 and text.endswith((".", "!", "?", "\u201d", '"', "»"))
    )


def _sibling_belongs(
    sibling: Element,
    top: Element,
    scores: dict[Element, float],
    top_score: float,
    measures: dict[Element, Measure],
) -> bool:
    threshold = max(10.0, top_score * 0.2)
    bonus = top_score * 0.2 if sibling.get("class") and sibling.get("class") == top.get("class") else 0.0
    if scores.get(sibling, 0.0) + bonus >= threshold:
        return True
    return tag_name(sibling) in ("p", "blockquote", "pre") and _prose(sibling, measures)


def _gather(
    anchor: Element,
    top_score: float,
    scores: dict[Element, float],
    measures: dict[Element, Measure],
    *,
    strict: bool = False,
) -> list[Element]:
    """The anchor block and its siblings that read as more of the same article, in document order.

    ``strict`` (above the top block) asks more of a sibling: a real score, paragraphs and few links.
    """
    parent = anchor.getparent()
    if parent is None:
        return [anchor]

    def belongs(child: Element) -> bool:
        if not isinstance(child.tag, str):
            return False
        if strict:
            m = measures.get(child)
            return (
                m is not None
                and m.paragraphs >= 1
                and m.density < 0.2
                and scores.get(child, 0.0) >= max(0.5 * scores.get(anchor, top_score), 0.2 * top_score)
            )
        return _sibling_belongs(child, anchor, scores, top_score, measures)

    kept = {child for child in parent if child is anchor or belongs(child)}
    # A heading right before a kept block introduces it (a section title or the lead's kicker).
    out: list[Element] = []
    for child in parent:
        if child in kept:
            out.append(child)
        elif tag_name(child) in _HEADINGS - {"h1"}:
            following = child.getnext()
            if following is not None and following in kept and out:
                out.append(child)
    return out


def _split_article(
    top: Element, body: Element, scores: dict[Element, float], measures: dict[Element, Measure]
) -> list[Element]:
    """The blocks of an article that may be split across sibling containers, up to three levels up.

    Climbs only through wrappers (the block holds most of its parent's text), so that gathering at a
    higher level cannot pull in a sidebar that sat beside the article inside the same parent.
    """
    top_score = scores.get(top, 0.0)
    anchor = top
    for level in range(3):
        keep = _gather(anchor, top_score, scores, measures, strict=level > 0)
        if len(keep) > 1:
            return keep
        parent = anchor.getparent()
        if parent is None or parent is body or tag_name(parent) in ("body", "html"):
            break
        if measures[anchor].text < 0.7 * measures[parent].text:
            break
        anchor = parent
    return [top]


def select_main(root: Element, measures: dict[Element, Measure]) -> Element:
    """Return a container holding the article body (the tree is modified: chosen blocks move into it).

    ``measures`` are those :func:`prune` returned for this tree.
    """
    body = next((e for e in root if tag_name(e) == "body"), root)
    marked = next((e for e in body.iter() if _is_article_body(e)), None)
    if marked is not None and measures[marked].text >= 200:
        return marked
    scores = _score(body, measures)
    if not scores:
        return body
    ranked = sorted(((score, element) for element, score in scores.items()), key=lambda item: -item[0])
    top = _pick(body, ranked)
    if top is body:
        return top
    keep = _split_article(top, body, scores, measures)
    if len(keep) == 1:
        return keep[0]
    container = new_element("div")
    keep[0].addprevious(container)
    for child in keep:
        tail = child.tail
        child.tail = None
        container.append(child)
        if tail and tail.strip():
            container.append(_text_block(tail))
    return container


def _text_block(text: str) -> Element:
    block = new_element("p")
    block.text = text
    return block


def _remove_share_links(container: Element, measures: dict[Element, Measure]) -> None:
    for link in list(container.iter("a")):
        if not _SHARER.search(attr(link, "href")):
            continue
        node = link
        for parent in link.iterancestors():
            if parent is container:
                break
            m = measures.get(parent)
            if m is None or (m.text - m.links > 40 and not boilerplate.is_boilerplate(text_of(parent))):
                break
            node = parent
        remove(node)


_LINE_TAGS = frozenset(
    "p h1 h2 h3 h4 h5 h6 div span strong b li section aside figure ul header footer a em".split()
)


def _remove_boilerplate(container: Element) -> None:
    """Short lines of page furniture, captions and credits, cookie and newsletter boxes."""
    measures = measure(container)
    for element in list(measures):
        if element is container:
            continue
        name = tag_name(element)
        m = measures[element]
        if name == "figcaption" or (name in ("div", "span", "p") and _caption_like(element)):
            if m.text < 400:
                remove(element)
            continue
        if name in _LINE_TAGS and m.text <= 90 and boilerplate.is_boilerplate(text_of(element)):
            remove(element)
        elif name in ("div", "section", "aside", "form", "footer", "p") and m.text <= 600:
            if boilerplate.is_pitch(text_of(element)):
                remove(element)


def _caption_like(element: Element) -> bool:
    parts = _hint_parts(element)
    return bool(parts & {"caption", "credit", "credits", "copyright", "photo-credit", "image-credit"})


def _clean_conditionally(container: Element) -> None:
    measures = measure(container)
    for element in reversed(list(measures)):
        if element is container or tag_name(element) not in (
            "div",
            "section",
            "ul",
            "ol",
            "table",
            "aside",
            "form",
            "nav",
        ):
            continue
        m = measures[element]
        if m.text == 0 and m.images == 0:
            remove(element)
            continue
        # A block that is mostly links and holds no real paragraph: related posts, tag clouds, menus.
        # A list with the article's prose after it is part of the article (sources, a reading list).
        if m.density > 0.5 and m.paragraphs == 0 and m.text < 3000:
            if not (tag_name(element) in ("ul", "ol") and _prose_follows(element, container, measures)):
                remove(element)
        elif (
            tag_name(element) in ("div", "section", "aside")
            and m.density > 0.33
            and not m.paragraphs
            and m.text < 200
        ):
            remove(element)


def _prose_follows(element: Element, container: Element, measures: dict[Element, Measure]) -> bool:
    """True when a paragraph of running text comes after the element inside the container."""
    node = element
    while node is not None and node is not container:
        for sibling in node.itersiblings():
            m = measures.get(sibling)
            if m is not None and m.paragraphs and m.density < 0.25:
                return True
        node = node.getparent()
    return False


def _inside_table_or_list(element: Element, container: Element) -> bool:
    for depth, node in enumerate([element, *element.iterancestors()]):
        if node is container or depth >= 8:
            return False
        if tag_name(node) in _TABLE_PARTS:
            return True
    return False


def _line_element(start: Element, container: Element, measures: dict[Element, Measure]) -> Element | None:
    """The largest ancestor of ``start`` (inside container) that still reads as one short line."""
    m = measures.get(start)
    if m is None or m.text > _MAX_LINE:
        return None
    element = start
    for parent in start.iterancestors():
        if parent is container:
            break
        pm = measures.get(parent)
        if pm is None or pm.text > _MAX_LINE:
            break
        if pm.text != measures[element].text and _has_block_child(parent):
            break
        element = parent
    return element


def _remove_date_lines(container: Element) -> None:
    """Drop visible date lines ("6 March 2019 - Section"): each text node is tested once (linear)."""
    measures = measure(container)
    doomed: list[Element] = []
    seen: set[Element] = set()
    for element in list(measures):
        for value, owner in ((element.text, element), (element.tail, element.getparent())):
            if owner is None or not value or not 6 <= len(value.strip()) <= _MAX_LINE:
                continue
            if find_date(value) is None:
                continue
            line = _line_element(owner, container, measures)
            if line is None or line is container or line in seen:
                continue
            seen.add(line)
            if not _inside_table_or_list(line, container) and date_line(text_of(line)) is not None:
                doomed.append(line)
    for line in doomed:
        remove(line)


def _drop_trailing_headings(container: Element) -> None:
    """A heading with nothing after it ends the body ("Join the conversation", "More on this"): drop it."""
    for _ in range(5):
        last = _last_text_element(container)
        if last is None or tag_name(last) not in _HEADINGS:
            return
        remove(last)


def _last_text_element(container: Element) -> Element | None:
    """The innermost block holding the last piece of text in the container."""
    for element in reversed(list(elements(container))):
        if element is container:
            return None
        if (element.tail or "").strip():
            return None  # loose text after the last block
        if "".join(element.itertext()).strip():
            for block in [element, *element.iterancestors()]:
                if block is container:
                    return element
                if tag_name(block) in _BLOCK_TAGS:
                    return block
    return None


def _drop_title_heading(container: Element, title: str | None) -> None:
    if not title:
        return
    found = 0
    for element in elements(container):
        if tag_name(element) not in ("h1", "h2", "h3", "p"):
            continue
        found += 1
        if found > 12:
            break
        if same_text(text_of(element), title):
            remove(element)


def _image_source(img: Element, base: str) -> str | None:
    for candidate in (attr(img, "src"), *(attr(img, name) for name in _LAZY_SRC_ATTRS)):
        candidate = candidate.strip()
        if not candidate or _PLACEHOLDER.search(candidate):
            continue
        # srcset-style values: "a.jpg 480w, b.jpg 800w" -> first URL
        first = candidate.split(",")[0].strip().split(" ")[0]
        resolved = absolute(base, first)
        if resolved:
            return resolved
    return None


def absolutize(container: Element, base: str) -> None:
    """Resolve link targets and image sources against the page URL; drop unusable ones."""
    for link in list(container.iter("a")):
        href = absolute(base, attr(link, "href"), schemes=("http", "https", "mailto"))
        link.attrib.clear()
        if href is None:
            unwrap(link)
        else:
            link.set("href", href)
    for img in list(container.iter("img")):
        src = _image_source(img, base)
        if src is None:
            remove(img)
            continue
        alt = attr(img, "alt")
        img.attrib.clear()
        img.set("src", src)
        if alt:
            img.set("alt", alt)


def clean_main(container: Element, title: str | None, base: str) -> None:
    """Strip share widgets, boilerplate lines, link lists, date lines and the repeated title from the body.

    Figures keep their image, alt text and caption (with the photo credit) as ``<figure>`` and
    ``<figcaption>``; :func:`~worker.normalize.render.plain_text` leaves captions out of the text.
    """
    _remove_share_links(container, measure(container))
    _remove_boilerplate(container)
    _clean_conditionally(container)
    _remove_date_lines(container)
    _drop_title_heading(container, title)
    _drop_trailing_headings(container)
    absolutize(container, base)
    _restore_captions(container)


def first_image(container: Element) -> str | None:
    """The first image left in the cleaned body (already absolute)."""
    for img in container.iter("img"):
        src = img.get("src")
        if src:
            return src
    return None
