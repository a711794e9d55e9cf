"""The element cache of feeds.build: no copies, one render per element at a time.

A render takes each item's cached RSS/Atom element out of the cache, feedgen moves it into the
document, and after serialization it is detached and put back. So a cold render (elements written
now), a warm one (elements reused) and one after the cache was emptied must write the same bytes,
no cached element may stay inside a document, and renders on many threads at once over
overlapping items (as a web process's archive pages are rendered in a thread pool) must each
write what a single thread writes.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from feeds import build
from feeds.build import FeedItem, FeedMeta, build_feed
from tests.feeds.test_feed_build import _load


def _many(count: int) -> tuple[FeedMeta, list[FeedItem]]:
    """``count`` distinct items with bodies of a few KB, made from the fixture items."""
    meta, base = _load("items.json")
    items = [
        dataclasses.replace(
            base[n % len(base)],
            id=f"{base[n % len(base)].id}/{n}",
            title=f"{base[n % len(base)].title} {n}",
            content_html=base[n % len(base)].content_html * 30,
        )
        for n in range(count)
    ]
    return meta, items


def _cached_elements() -> list[object]:
    return [value for key, (value, _) in build._CACHE._data.items() if key[0] in ("rss", "atom")]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    build.clear_cache()
    yield
    build.clear_cache()


@pytest.mark.parametrize("fixture", ["items.json", "hostile.json"])
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_cold_warm_and_recleared_renders_write_the_same_bytes(fixture: str, fmt: str) -> None:
    meta, items = _load(fixture)
    cold = build_feed(meta, items, fmt).body
    assert len(_cached_elements()) == cold.count(b"<item>") + cold.count(b"<entry>") >= 3
    warm = build_feed(meta, items, fmt).body
    # An edit elsewhere in the feed: the other elements are reused around a newly written one.
    edited = [dataclasses.replace(items[0], title="Edited title"), *items[1:]]
    assert build_feed(meta, edited, fmt).body != cold
    again = build_feed(meta, items, fmt).body
    build.clear_cache()
    assert cold == warm == again == build_feed(meta, items, fmt).body


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_cached_elements_are_detached_from_the_rendered_document(fmt: str) -> None:
    meta, items = _many(20)
    build_feed(meta, items, fmt)
    build_feed(meta, items[5:], fmt)
    elements = _cached_elements()
    assert len(elements) == 20
    assert [e for e in elements if e.getparent() is not None] == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_concurrent_renders_of_overlapping_items_write_what_one_thread_writes(fmt: str) -> None:
    meta, items = _many(90)
    windows = [items[start : start + 50] for start in range(0, 41, 8)]
    expected = [build_feed(meta, window, fmt).body for window in windows]
    build.clear_cache()

    def work(thread: int) -> list[int]:
        wrong = []
        for round_no in range(12):
            n = (thread + round_no) % len(windows)
            if build_feed(meta, windows[n], fmt).body != expected[n]:
                wrong.append(n)
        return wrong

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(work, range(6)))
    finally:
        sys.setswitchinterval(interval)
    assert results == [[]] * 6
    assert 50 <= len(_cached_elements()) <= len(items)
