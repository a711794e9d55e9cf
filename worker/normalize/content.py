"""Find the article body in a parsed page and strip everything around and inside it that is not the article.

The approach: drop page furniture by tag, role and class/id hints (navigation, comments, share widgets,
cookie banners, ads, newsletter boxes...), score paragraph containers by text density, take the best one
(plus the siblings that look like more of the same article), then clean inside it: share links, short
boilerplate lines, link lists, the visible date line and a heading that repeats the title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag
from bs4.element import PreformattedString

from worker.normalize.dates import find_date
from worker.normalize.metadata import attr, date_line, line_element
from worker.normalize.textutil import element_text, same_text, squash
from worker.normalize.urls import absolute

_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "frame",
        "frameset",
        "svg",
        "canvas",
        "object",
        "embed",
        "applet",
        "button",
        "input",
        "select",
        "textarea",
        "option",
        "optgroup",
        "label",
        "link",
        "meta",
        "dialog",
        "map",
        "audio",
        "video",
        "source",
        "track",
        "head",
        "title",
        "base",
    }
)
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body details dialog dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre section table tbody thead tfoot tr td th "
    "ul center menu".split()
)
_PARAGRAPH_TAGS = ("p", "pre", "td", "div", "section")

_STRONG_PREFIXES = (
    "comment",
    "disqus",
    "share",
    "sharing",
    "social",
    "sharedaddy",
    "addtoany",
    "a2a",
    "relatedpost",
    "related",
    "recommend",
    "newsletter",
    "subscri",
    "signup",
    "cookie",
    "consent",
    "gdpr",
    "advert",
    "sponsor",
    "promo",
    "outbrain",
    "taboola",
    "popup",
    "modal",
    "paywall",
    "breadcrumb",
    "jp-relatedposts",
)
_STRONG_EXCEPTIONS = ("commentary", "shareable")
_WEAK_TOKENS = frozenset(
    "ad ads adslot adunit nav navbar navigation menu footer header masthead sidebar widget banner tags "
    "taglist meta byline print skip toolbar pagination pager".split()
)
_TAXONOMY_PREFIXES = ("tag-", "category-", "cat-", "topic-", "section-", "format-", "type-", "status-")
_HIDDEN_CLASSES = frozenset("hidden sr-only screen-reader-text visually-hidden visuallyhidden".split())
_TOKEN_SPLIT = re.compile(r"[\s_-]+")
_WEAK_ROLES = frozenset(
    "navigation banner contentinfo complementary search menu menubar toolbar dialog alertdialog".split()
)
_WEAK_TAG_NAMES = frozenset({"nav", "aside", "footer", "header", "form"})
_ARIA_HINT = re.compile(r"share|social|comment|related|cookie|consent|newsletter|advert|sponsor", re.I)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)

_POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story", re.I)
_NEGATIVE = re.compile(
    r"hidden|banner|combx|comment|com-|contact|foot|footer|footnote|gdpr|masthead|media|meta|outbrain|promo|"
    r"related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping|tags|tool|widget|cookie|newsletter",
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
_BOILERPLATE = re.compile(
    r"^(?:share(?: this)?(?: article| post| story| page| on \w+)?|share via .*|tweet(?: this)?|email|print|"
    r"advertisement|advertising|ad|sponsored(?: content)?|"
    r"related(?: posts| articles| stories| news| content)?|"
    r"you (?:may|might) also (?:like|enjoy)|read (?:more|next|also)|recommended(?: for you| articles)?|"
    r"more (?:stories|news|from .{1,30})|leave a (?:reply|comment)|post a comment|comments?(?: \(\d+\))?|"
    r"\d+ comments?|no comments(?: yet)?|subscribe(?: to our newsletter| now)?|"
    r"sign up for (?:our|the) .{1,40}|"
    r"accept(?: all)? cookies|tags?|filed under|follow us(?: on .{1,30})?|continue reading.{0,60}|"
    r"skip to (?:main )?content|back to top|previous (?:post|article)|next (?:post|article))[\s:.!…]*$",
    re.I,
)
_COOKIE = re.compile(r"\bcookies?\b", re.I)
_CONSENT_WORD = re.compile(r"\b(?:accept|agree|consent|got it|allow|reject|decline)\b", re.I)
_NEWSLETTER = re.compile(r"\bnewsletter\b", re.I)
_SIGNUP_WORD = re.compile(r"\b(?:sign ?up|subscribe|inbox|e-?mail address)\b", re.I)
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


@dataclass
class _Measure:
    text: int = 0
    links: int = 0
    paragraphs: int = 0
    images: int = 0


def _measure(root: Tag) -> dict[int, _Measure]:
    """Text, link-text, paragraph and image counts for every element under root, in one linear pass."""
    measures: dict[int, _Measure] = {}
    nodes: list[PageElement] = [root, *root.descendants]
    for node in reversed(nodes):
        parent = node.parent
        if isinstance(node, Tag):
            own = measures.setdefault(id(node), _Measure())
            if node.name == "a":
                own.links = own.text
            elif node.name == "p" and own.text >= 20:
                own.paragraphs += 1
            elif node.name == "img":
                own.images += 1
            if node is root or parent is None:
                continue
            total = measures.setdefault(id(parent), _Measure())
            total.text += own.text
            total.links += own.links
            total.paragraphs += own.paragraphs
            total.images += own.images
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            if node is root or parent is None:
                continue
            length = len(" ".join(node.split()))
            if length:
                measures.setdefault(id(parent), _Measure()).text += length + 1
    return measures


def _gone(tag: Tag) -> bool:
    """True once a tag (or an ancestor) was decomposed.

    ``Tag.decomposed`` and even ``.parent`` on a removed tag are avoided: both fall back to a subtree search
    through ``Tag.__getattr__``, which makes loops over deeply nested pages quadratic. Decomposing clears
    the instance attributes, so a removed tag has no ``parent`` entry left.
    """
    return vars(tag).get("parent") is None


def _tags(root: Tag) -> list[Tag]:
    """Every element under root in document order (much faster than ``find_all(True)``)."""
    return [node for node in root.descendants if isinstance(node, Tag)]


def _is_article_body(tag: Tag) -> bool:
    return "articlebody" in attr(tag, "itemprop").lower().split()


def _hint_tokens(tag: Tag) -> list[str]:
    values = [*(tag.get("class") or []), attr(tag, "id")]
    tokens: list[str] = []
    for value in values:
        lowered = str(value).lower()
        # WordPress-style taxonomy classes ("tag-social-media") describe the post, not a widget.
        if lowered and not lowered.startswith(_TAXONOMY_PREFIXES):
            tokens.append(lowered)
            tokens.extend(t for t in _TOKEN_SPLIT.split(lowered) if t)
    return tokens


def _junk_kind(tag: Tag) -> str | None:
    """'strong' for widgets that are never article text, 'weak' for furniture that only may not be."""
    if tag.name == "dialog":
        return "strong"
    tokens = _hint_tokens(tag)
    for token in tokens:
        if token.startswith(_STRONG_PREFIXES) and not token.startswith(_STRONG_EXCEPTIONS):
            return "strong"
    aria = attr(tag, "aria-label")
    if aria and _ARIA_HINT.search(aria):
        return "strong"
    if tag.name in _WEAK_TAG_NAMES or attr(tag, "role").lower() in _WEAK_ROLES:
        return "weak"
    if any(token in _WEAK_TOKENS for token in tokens) or _HIDDEN_CLASSES.intersection(tag.get("class") or []):
        return "weak"
    if tag.has_attr("hidden") or attr(tag, "aria-hidden").lower() == "true":
        return "weak"
    style = attr(tag, "style")
    if style and _HIDDEN_STYLE.search(style):
        return "weak"
    return None


def prune(root: Tag) -> None:
    """Remove non-content tags and page furniture recognized by tag, role, class/id and aria hints.

    Size guards keep a wrapper that happens to carry a hint (``<div class="has-sidebar">``) from taking
    the article with it: nothing holding the ``<h1>`` or the marked-up article body goes, and nothing
    holding most of the page's text.
    """
    tags = _tags(root)
    for tag in tags:
        if tag.name in _DROP_TAGS and not _gone(tag):
            tag.decompose()
    tags = [tag for tag in tags if not _gone(tag)]
    protected = {id(root)}
    for tag in tags:
        if tag.name == "h1" or _is_article_body(tag):
            protected.update(id(parent) for parent in tag.parents)
            protected.add(id(tag))
    measures = _measure(root)
    total = max(1, measures[id(root)].text)
    for tag in tags:
        if _gone(tag) or id(tag) in protected or tag.name in ("html", "body"):
            continue
        kind = _junk_kind(tag)
        if kind is None:
            continue
        size = measures.get(id(tag), _Measure()).text
        limit = 0.8 if kind == "strong" and tag.name not in ("article", "main") else 0.4
        if size < limit * total:
            tag.decompose()


def _initial_score(tag: Tag) -> float:
    score = {"div": 5.0, "article": 10.0, "main": 5.0, "pre": 3.0, "td": 3.0, "blockquote": 3.0}.get(
        tag.name, 0.0
    )
    if tag.name in ("address", "ol", "ul", "dl", "dd", "dt", "li", "form"):
        score -= 3
    elif tag.name in ("h1", "h2", "h3", "h4", "h5", "h6", "th"):
        score -= 5
    for value in (" ".join(tag.get("class") or []), attr(tag, "id")):
        if value:
            if _NEGATIVE.search(value):
                score -= 25
            if _POSITIVE.search(value):
                score += 25
    if "articlebody" in attr(tag, "itemprop").lower():
        score += 30
    return score


def _has_block_child(tag: Tag) -> bool:
    return any(isinstance(child, Tag) and child.name in _BLOCK_TAGS for child in tag.children)


def _loose_text(tag: Tag) -> str:
    parts = []
    for child in tag.children:
        if isinstance(child, Tag):
            if child.name not in _BLOCK_TAGS and child.name != "a":
                parts.append(child.get_text(" "))
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            parts.append(str(child))
    return squash(" ".join(parts))


def _score(root: Tag, measures: dict[int, _Measure]) -> list[tuple[float, Tag]]:
    scores: dict[int, list[object]] = {}
    for para in _tags(root):
        if para.name not in _PARAGRAPH_TAGS:
            continue
        if para.name in ("div", "section") and _has_block_child(para):
            # Text written straight into a container between its blocks (``text<br><br>text``) is a
            # paragraph of that container itself.
            text = _loose_text(para)
            ancestors = [para, *para.parents]
        else:
            text = element_text(para)
            ancestors = list(para.parents)
        if len(text) < 25:
            continue
        points = 1 + text.count(",") + text.count("،") + text.count("\uff0c") + min(len(text) // 100, 3)
        for level, ancestor in enumerate(ancestors):
            if level >= 5 or ancestor.name in ("[document]", "html"):
                break
            entry = scores.get(id(ancestor))
            if entry is None:
                entry = scores[id(ancestor)] = [ancestor, _initial_score(ancestor)]
            divider = 1 if level == 0 else 2 if level == 1 else level * 3
            entry[1] = float(entry[1]) + points / divider  # type: ignore[arg-type]
    ranked: list[tuple[float, Tag]] = []
    for tag, score in scores.values():
        assert isinstance(tag, Tag) and isinstance(score, float)
        measure = measures.get(id(tag), _Measure())
        density = measure.links / measure.text if measure.text else 0.0
        ranked.append((score * (1 - min(1.0, density)), tag))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return ranked


def _ancestors(tag: Tag) -> set[int]:
    return {id(parent) for parent in tag.parents}


def _pick(root: Tag, ranked: list[tuple[float, Tag]]) -> Tag:
    top_score, top = ranked[0]
    # Several strong candidates under one ancestor: the article is split into blocks, take the ancestor.
    rivals = [_ancestors(tag) for score, tag in ranked[1:5] if score >= 0.75 * top_score]
    if len(rivals) >= 3:
        for parent in top.parents:
            if parent is root or parent.name in ("body", "html", "[document]"):
                break
            if sum(id(parent) in ancestors for ancestors in rivals) >= 3:
                return parent
    return top


def _sibling_belongs(
    sibling: Tag, top: Tag, scores: dict[int, float], top_score: float, measures: dict[int, _Measure]
) -> bool:
    threshold = max(10.0, top_score * 0.2)
    bonus = top_score * 0.2 if sibling.get("class") and sibling.get("class") == top.get("class") else 0.0
    if scores.get(id(sibling), 0.0) + bonus >= threshold:
        return True
    if sibling.name == "p":
        measure = measures.get(id(sibling), _Measure())
        density = measure.links / measure.text if measure.text else 0.0
        text = element_text(sibling)
        if len(text) > 80 and density < 0.25:
            return True
        if 0 < len(text) <= 80 and density == 0 and text.endswith((".", "!", "?", "\u201d", '"')):
            return True
    return False


def select_main(soup: BeautifulSoup) -> Tag:
    """Return a container holding the article body (the page is modified: chosen nodes are moved into it)."""
    root = soup.body or soup
    marked = next((tag for tag in _tags(root) if _is_article_body(tag)), None)
    if marked is not None and len(element_text(marked)) >= 200:
        return marked
    measures = _measure(root)
    ranked = _score(root, measures)
    if not ranked:
        return root
    top = _pick(root, ranked)
    scores = {id(tag): score for score, tag in ranked}
    top_score = scores.get(id(top), ranked[0][0])
    parent = top.parent
    if parent is None or top is root:
        return top
    keep = [
        child
        for child in parent.children
        if child is top
        or (isinstance(child, Tag) and _sibling_belongs(child, top, scores, top_score, measures))
    ]
    if len(keep) == 1:
        return top
    container = soup.new_tag("div")
    top.insert_before(container)
    for child in keep:
        container.append(child.extract())
    return container


def _is_boilerplate_line(text: str) -> bool:
    return len(text) <= 80 and bool(_BOILERPLATE.match(text))


def _remove_share_links(container: Tag) -> None:
    for link in container.find_all("a", href=_SHARER):
        if _gone(link):
            continue
        node: Tag = link
        while node.parent is not None and node.parent is not container:
            parent = node.parent
            text = element_text(parent)
            linked = sum(len(element_text(a)) for a in parent.find_all("a"))
            if len(text) - linked > 40 and not _is_boilerplate_line(text):
                break
            node = parent
        node.decompose()


def _remove_boilerplate(container: Tag) -> None:
    tags = (
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "div",
        "span",
        "strong",
        "b",
        "li",
        "section",
        "aside",
        "figure",
        "ul",
        "header",
        "footer",
        "a",
        "em",
    )
    measures = _measure(container)
    for tag in container.find_all(tags):
        if _gone(tag) or measures.get(id(tag), _Measure()).text > 90:
            continue
        if _is_boilerplate_line(element_text(tag)):
            tag.decompose()
    for tag in container.find_all(("div", "section", "aside", "form", "footer")):
        if _gone(tag) or measures.get(id(tag), _Measure()).text > 500:
            continue
        text = element_text(tag)
        if (_COOKIE.search(text) and _CONSENT_WORD.search(text)) or (
            _NEWSLETTER.search(text) and _SIGNUP_WORD.search(text)
        ):
            tag.decompose()


def _clean_conditionally(container: Tag) -> None:
    measures = _measure(container)
    for tag in reversed(container.find_all(("div", "section", "ul", "ol", "table", "aside", "form", "nav"))):
        if _gone(tag):
            continue
        m = measures.get(id(tag), _Measure())
        if m.text == 0 and m.images == 0:
            tag.decompose()
            continue
        density = m.links / m.text if m.text else 0.0
        # A block that is mostly links and holds no real paragraph: related posts, tag clouds, menus.
        if density > 0.5 and m.paragraphs == 0 and m.text < 3000:
            tag.decompose()
        elif tag.name in ("div", "section", "aside") and density > 0.33 and not m.paragraphs and m.text < 200:
            tag.decompose()


def _inside_table_or_list(tag: Tag, container: Tag) -> bool:
    node: Tag | None = tag
    depth = 0
    while node is not None and node is not container and depth < 8:
        if node.name in _TABLE_PARTS:
            return True
        node = node.parent
        depth += 1
    return False


def _remove_date_lines(container: Tag) -> None:
    for string in list(container.find_all(string=True)):
        if not isinstance(string, NavigableString) or isinstance(string, PreformattedString):
            continue
        # Strings inside an already removed line lose their attributes, parent included.
        if getattr(string, "parent", None) is None or not 6 <= len(string.strip()) <= 120:
            continue
        if find_date(string) is None:
            continue
        element = line_element(string)
        if element is None or element is container or _gone(element):
            continue
        if _inside_table_or_list(element, container):
            continue
        if date_line(element_text(element)) is not None:
            element.decompose()


def _drop_title_heading(container: Tag, title: str | None) -> None:
    if not title:
        return
    # A paragraph that only repeats the title is a "title line" above the heading (the seed has one).
    for heading in container.find_all(("h1", "h2", "h3", "p"), limit=12):
        if same_text(element_text(heading), title):
            heading.decompose()


def _image_source(img: Tag, base: str) -> str | None:
    candidates = [attr(img, "src")]
    candidates.extend(attr(img, name) for name in _LAZY_SRC_ATTRS)
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate or _PLACEHOLDER.search(candidate):
            continue
        # srcset-style values: "a.jpg 480w, b.jpg 800w" -> first URL
        first = candidate.split(",")[0].strip().split(" ")[0]
        resolved = absolute(base, first)
        if resolved:
            return resolved
    return None


def absolutize(container: Tag, base: str) -> None:
    """Resolve link targets and image sources against the page URL; drop unusable ones."""
    for link in container.find_all("a"):
        href = absolute(base, attr(link, "href"), schemes=("http", "https", "mailto"))
        if href is None:
            link.unwrap()
        else:
            link.attrs = {"href": href}
    for img in container.find_all("img"):
        src = _image_source(img, base)
        if src is None:
            img.decompose()
        else:
            alt = attr(img, "alt")
            img.attrs = {"src": src, "alt": alt} if alt else {"src": src}


def clean_main(container: Tag, title: str | None, base: str) -> None:
    """Strip share widgets, boilerplate lines, link lists, date lines and the repeated title from the body."""
    _remove_share_links(container)
    _remove_boilerplate(container)
    _clean_conditionally(container)
    _remove_date_lines(container)
    _drop_title_heading(container, title)
    absolutize(container, base)


def first_image(container: Tag) -> str | None:
    """The first image left in the cleaned body (already absolute)."""
    img = container.find("img", src=True)
    return attr(img, "src") if isinstance(img, Tag) else None
