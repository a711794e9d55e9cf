"""The demo site's stories (worker/demo/) make a feed the W3C validator passes without a warning.

Each demo page goes through the real normalizer, as the example config's crawl does, and becomes a
feed item the way ``worker.store.queries`` maps a stored article (``updated`` is the page's modification
date, else the time it was stored; ``published`` its publication date). The validator warns when
two Atom entries share an ``updated``: a page without a modification date would take the time it
was stored, and three demo pages stored within one second did exactly that, so each page declares
its own date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.build import FeedItem, FeedMeta, render_all
from tests.feeds.test_feed_validators import VALIDATOR, validate
from worker.normalize import normalize

DEMO = Path(__file__).resolve().parents[2] / "worker" / "demo"
ORIGIN = "http://127.0.0.1:8000"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# When the crawl stored them: the same second for all three, as a first crawl does.
STORED = datetime(2026, 12, 2, 11, 59, 30, tzinfo=UTC)
META = FeedMeta(
    name="all",
    title="Syndicate demo: all partner news",
    home_url=ORIGIN + "/",
    self_url_base=ORIGIN + "/feeds/all",
    now=NOW,
)


def _demo_items() -> list[FeedItem]:
    items = []
    for n, page in enumerate(sorted(p for p in DEMO.glob("*.html") if p.name != "index.html")):
        url = f"{ORIGIN}/demo/2019/03/{page.name}"
        article = normalize(page.read_text(encoding="utf-8"), url)
        items.append(
            FeedItem(
                id=f"tag:127.0.0.1,2026-12-02:articles/{n + 1}",
                url=url,
                title=article.title,
                summary=article.summary or "",
                content_html=article.content_html,
                published=article.published,
                updated=article.updated or STORED,
                authors=tuple(article.authors),
                content_is_clean=True,
            )
        )
    return items


def test_every_demo_story_has_its_own_dates() -> None:
    items = _demo_items()
    assert len(items) == 3
    assert all(i.published is not None for i in items)
    assert len({i.updated for i in items}) == len(items)
    assert all(i.published <= i.updated < STORED for i in items if i.published and i.updated)


@pytest.mark.skipif(not VALIDATOR.exists(), reason="the vendored W3C validator is not checked out")
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_demo_feed_passes_the_w3c_validator(fmt: str, tmp_path: Path) -> None:
    feed = render_all(META, _demo_items())[fmt]
    assert feed.body.count(b"<item>" if fmt == "rss" else b"<entry>") == 3
    assert validate(feed, tmp_path, META.self_url_base) == ""
