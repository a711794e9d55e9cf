"""The normalization pipeline: bytes or text of a page in, one :class:`Article` out.

Stages (each timed by :data:`PROFILE` when profiling is on, for ``bench/extraction.py``): decode, prepare
(raw-text elements out, JSON-LD kept), parse (lxml, once), metadata, prune + select (main content on the
lxml tree), clean, render (serialize, sanitize with nh3, plain text from the small fragment).
"""

from __future__ import annotations

import html as html_lib
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from worker.errors import NormalizeError
from worker.normalize import content, decode, render, tree
from worker.normalize.article import Article, summarize
from worker.normalize.language import guess_language, primary_subtag
from worker.normalize.metadata import PageIndex, extract_metadata
from worker.normalize.textutil import clean_value, squash
from worker.normalize.urls import strip_fragment

_MIN_DESCRIPTION = 40
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
MAX_TITLE_CHARS = 300


class Profile:
    """Seconds spent per stage, summed over calls; off unless ``enabled`` (two clock reads a stage)."""

    def __init__(self) -> None:
        self.enabled = False
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` when enabled."""
        if not self.enabled:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


PROFILE = Profile()


def _fallback_body(body_text: str) -> tuple[str, str]:
    paragraphs = [squash(p) for p in re.split(r"\n\s*\n|\r\n\s*\r\n", body_text)]
    paragraphs = [p for p in paragraphs if p]
    fragment = "".join(f"<p>{html_lib.escape(p, quote=False)}</p>" for p in paragraphs)
    return render.sanitize(fragment), "\n\n".join(paragraphs)


def _title_from_text(text: str) -> str:
    first = text.split("\n", 1)[0]
    sentence = _SENTENCE_END.split(first, maxsplit=1)[0]
    return summarize(sentence, 120)


def normalize(
    document: bytes | str,
    url: str,
    *,
    content_type: str | None = None,
    default_category: str | None = None,
    language_hint: str | None = None,
) -> Article:
    """Extract the article from a fetched page.

    ``document`` is the raw body (bytes are decoded using ``content_type``'s charset, a BOM, ``<meta
    charset>`` or a UTF-8/windows-1252 guess) and ``url`` the address it was fetched from. Pure: no
    network, no database. Raises :class:`~worker.errors.NormalizeError` when there is no article.
    """
    stage = PROFILE.stage
    with stage("decode"):
        decode.check_content_type(content_type)
        text = decode.to_text(document, content_type)
    with stage("prepare"):
        prepared = decode.prepare(text)
    with stage("parse"):
        root = tree.parse(prepared.html)
    with stage("metadata"):
        meta = extract_metadata(prepared.html, prepared.json_ld, url, PageIndex(root))
    base = meta.base_url
    with stage("select"):
        main = content.select_main(root, content.prune(root))
    with stage("clean"):
        content.clean_main(main, meta.title, base)
    with stage("render"):
        content_html, body_text = render.render(main)
        if len(body_text) < 100 and meta.body_text and len(meta.body_text) > len(body_text):
            # The markup held (almost) nothing, but the publisher's JSON-LD carries the article body.
            content_html, body_text = _fallback_body(meta.body_text)
        if len(body_text) < 100 and prepared.noscript and len(prepared.noscript) > len(body_text):
            content_html, body_text = _noscript_body(prepared.noscript, meta.title, base) or (
                content_html,
                body_text,
            )

    title = meta.title or ""
    if not title and not body_text:
        raise NormalizeError(f"no article found at {url}: no title and no text")
    if not body_text.strip():
        raise NormalizeError(f"no article found at {url}: the page holds no body text")
    if not title:
        title = _title_from_text(body_text)
    # An unclosed <title> swallows the page as browsers do; no real headline is this long.
    title = summarize(title, MAX_TITLE_CHARS)

    description = clean_value(meta.description)
    summary_source = description if len(description) >= _MIN_DESCRIPTION else body_text or description

    language = meta.language or primary_subtag(language_hint) or guess_language(f"{title}\n{body_text}")
    categories = tuple(meta.categories) or ((default_category,) if default_category else ())
    return Article(
        url=url,
        canonical_url=meta.canonical_url or strip_fragment(url),
        title=title,
        published=meta.published,
        updated=meta.updated,
        authors=tuple(meta.authors),
        categories=categories,
        tags=tuple(meta.tags),
        image=meta.image or content.first_image(main),
        content_html=content_html,
        text=body_text,
        language=language,
        summary=summarize(summary_source),
        site_name=meta.site_name,
        published_has_time=meta.published_has_time,
        updated_has_time=meta.updated_has_time,
    )


def _noscript_body(markup: str, title: str | None, base: str) -> tuple[str, str] | None:
    """The article from the page's ``<noscript>`` blocks (pages that render their body with JavaScript)."""
    try:
        root = tree.parse(f"<html><body>{markup}</body></html>")
    except NormalizeError:
        return None
    main = content.select_main(root, content.prune(root))
    content.clean_main(main, title, base)
    found = render.render(main)
    return found if found[1] else None
