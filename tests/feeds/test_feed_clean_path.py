"""The pipeline's "already sanitized" path: stored bodies skip the feed builder's nh3 pass, safely.

``worker.store.queries.feed_items`` marks stored articles ``content_is_clean`` because every stored
``content_html`` is the normalizer's nh3 output. These tests push hostile articles through the real
path (``ingest_article`` → ``process_article``, i.e. ``normalize`` → store → ``feed_items`` →
``render_all``) on SQLite and PostgreSQL and check that no format carries anything executable, and that
the builder's own sanitizer would not have changed a byte. Callers other than the pipeline keep the
default (``content_is_clean=False``) and are sanitized by the builder, as before.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest
from lxml import etree

from config.model import parse_config
from config.settings import Settings
from feeds.build import FeedItem, FeedMeta, build_feed, render_all
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.render import current_feed
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade
from worker.store.queries import feed_items

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOSTILE_BODIES = [
    '<p>Intro</p><script>alert(1)</script><img src="https://x.example/a.jpg" onerror="alert(2)">',
    '<p><a href="javascript:alert(3)">click</a> <a href="JaVaScRiPt:alert(4)">again</a></p>',
    '<p>x</p><iframe src="https://evil.example/"></iframe><object data="x.swf"></object>',
    '<svg onload="alert(5)"><script>alert(6)</script></svg><p style="background:url(javascript:a)">s</p>',
    '<p>]]> and <![CDATA[ ]]> in the body</p><form action="https://evil.example/"><button>go</button></form>',
    "<p>\u202egnp.exe\u202c with a bidi override, a C1 \x85 control and emoji 🎉</p>"
    '<a href="data:text/html,<script>alert(7)</script>">data</a>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/"><base href="https://evil.example/">'
    '<p onclick="alert(8)" onmouseover="alert(9)">handlers</p><img srcset="javascript:alert(10)">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(11)></style></mglyph></table></mtext></math>"
    '<noscript><p title="</noscript><img src=x onerror=alert(12)>">mxss</p></noscript><p>end</p>',
]
EXECUTABLE_TAGS = {"script", "iframe", "object", "embed", "svg", "math", "style", "form", "base", "meta"}


def _config() -> dict[str, object]:
    return {
        "sources": [{"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/"}],
        "feeds": [{"name": "all", "title": "All partner news"}],
    }


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A Runtime on the migrated test database (pushed HTML is never fetched, so no Redis is used)."""
    upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        var_dir=tmp_path / "var",
        public_url="http://feeds.example.test",
    )
    env: dict[str, str] = {}
    yield Runtime(settings=settings, config=parse_config(_config(), lookup=env.get), base_dir=tmp_path)
    get_engine(database_url).dispose()


@pytest.fixture
def hostile_items(runtime: Runtime) -> tuple[FeedMeta, list[FeedItem]]:
    """Every hostile body pushed, normalized and stored; the feed's meta and items as the pipeline reads."""
    for n, body in enumerate(HOSTILE_BODIES):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Hostile <script>alert({n})</script> story {n}",
                content_html=body,
                published=datetime(2026, 11, n + 1, 9, 0, tzinfo=UTC),
            ),
        )
        assert process_article(runtime, article_id).status == "ready"
    with runtime.session() as session:
        meta, items = current_feed(runtime, session, runtime.config.feed("all"), NOW)
    assert len(items) == len(HOSTILE_BODIES)
    return meta, items


def _assert_nothing_executable(fragment: str) -> None:
    if not fragment.strip():
        return
    for element in lxml.html.fragment_fromstring(fragment, create_parent="div").iter():
        if not isinstance(element.tag, str):
            continue
        assert element.tag not in EXECUTABLE_TAGS, etree.tostring(element)
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert name.lower() not in {"style", "srcset", "srcdoc", "formaction"}, (element.tag, name)
            assert "javascript:" not in value.lower().replace(" ", ""), (element.tag, name, value)
            assert not value.lower().startswith("data:"), (element.tag, name, value)


def _bodies(rendered: dict[str, bytes]) -> list[str]:
    """Every HTML fragment a reader would render: RSS/Atom content and summaries, JSON content_html."""
    out: list[str] = []
    for fmt in ("rss", "atom"):
        root = etree.fromstring(rendered[fmt])
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            local = etree.QName(element).localname
            if local in {"encoded", "description", "content", "summary"} and element.text:
                out.append(element.text)
    doc = json.loads(rendered["json"])
    out += [item.get("content_html", "") for item in doc["items"]]
    return out


def test_stored_articles_are_marked_clean(
    runtime: Runtime, hostile_items: tuple[FeedMeta, list[FeedItem]]
) -> None:
    _, items = hostile_items
    assert all(item.content_is_clean for item in items)
    with runtime.session() as session:
        direct = feed_items(session, runtime.config.feed("all"), now=NOW)
    assert direct and all(item.content_is_clean for item in direct)


def test_hostile_pushed_content_renders_nothing_executable(
    hostile_items: tuple[FeedMeta, list[FeedItem]],
) -> None:
    meta, items = hostile_items
    rendered = {fmt: out.body for fmt, out in render_all(meta, items).items()}
    bodies = _bodies(rendered)
    assert len(bodies) >= 3 * len(items)
    for fragment in bodies:
        _assert_nothing_executable(fragment)
        assert "\u202e" not in fragment and "\x85" not in fragment
    for body in rendered.values():
        assert b"alert(" not in body.replace(b"&lt;script&gt;", b"")
        assert b"<script" not in body
    # The prose of each story made it through.
    assert "handlers" in rendered["json"].decode() and "with a bidi override" in rendered["json"].decode()


def test_skipping_the_second_sanitizer_changes_no_byte(
    hostile_items: tuple[FeedMeta, list[FeedItem]],
) -> None:
    meta, items = hostile_items
    resanitized = [dataclasses.replace(item, content_is_clean=False) for item in items]
    for fmt in ("rss", "atom", "json"):
        assert build_feed(meta, items, fmt).body == build_feed(meta, resanitized, fmt).body, fmt


def test_other_callers_are_still_sanitized() -> None:
    meta = FeedMeta(name="f", title="F", home_url="https://x.example/", self_url_base="https://x.example/f")
    item = FeedItem(
        id="https://x.example/1", url="https://x.example/1", title="t", content_html=HOSTILE_BODIES[0]
    )
    assert item.content_is_clean is False
    for fmt, out in render_all(meta, [item]).items():
        assert b"<script" not in out.body and b"onerror" not in out.body, fmt


FIGURE_PAGE = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "figure-captions-credits.html"


def test_figures_keep_alt_text_and_captions_in_every_format(runtime: Runtime) -> None:
    """Issue 16: a figure's image, alt text and caption (a bare photo credit) reach every feed format."""
    article_id, _ = ingest_article(
        runtime,
        PushedArticle(url="https://herald.example/news/solar-farm/", html=FIGURE_PAGE.read_text()),
    )
    assert process_article(runtime, article_id).status == "ready"
    with runtime.session() as session:
        meta, items = current_feed(runtime, session, runtime.config.feed("all"), NOW)
    rendered = {fmt: out.body for fmt, out in render_all(meta, items).items()}
    bodies = [body for body in _bodies(rendered) if "<figure>" in body]
    assert len(bodies) == 3  # RSS content:encoded, Atom content, JSON Feed content_html
    for body in bodies:
        figures = lxml.html.fragment_fromstring(body, create_parent="div").findall(".//figure")
        seen = [(f.find("img").get("alt"), f.findtext("figcaption")) for f in figures]
        assert seen == [
            ("photo", "Photo: Green Partners"),
            ("The mayor cuts the ribbon", "The mayor cuts the ribbon at the gate."),
            ("Rows of panels", "Twelve thousand panels face south. © Ana Pop"),
        ], seen
        assert 'alt=""' not in body  # the lead image is the first figure's: not added again without alt
    resanitized = [dataclasses.replace(item, content_is_clean=False) for item in items]
    for fmt in ("rss", "atom", "json"):
        assert build_feed(meta, resanitized, fmt).body == rendered[fmt], fmt
