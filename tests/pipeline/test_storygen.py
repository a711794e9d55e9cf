"""The generated sites' stories (tests/support/storygen.py) through the real matcher: distinct events
stay apart, the write-ups of one event (reworded, German) come together.

The fault suite and the scale-out rig count one post per (story, endpoint) with stories on; that
count only means something if the matcher sees the generated events as the generator meant them.
The pages are rendered as the test sites serve them and normalized as ``syndicate scrape`` does;
the pairs are decided as ``syndicate story match`` decides them. ``STORYGEN_EVENTS`` raises the
number of events (the commit that added this measured 300: 0 of 44,550 cross-event pairs within the
window merged, all 900 same-event pairs joined).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from tests.pipeline.sitegen import Story
from tests.support.storygen import VARIANTS, Event, events
from worker.normalize import normalize
from worker.stories.match import Matcher

EVENTS = int(os.environ.get("STORYGEN_EVENTS", "45"))
WINDOW_DAYS = 3


def _page(event: Event, variant: int) -> dict[str, Any]:
    """Write-up ``variant`` of ``event`` as the site serves it, normalized as ``syndicate scrape`` does."""
    story = Story.of(event, variant, f"{event.key}-{variant}")
    url = f"http://outlet-{variant}.example{story.path}"
    return normalize(story.html().encode(), url, content_type="text/html; charset=utf-8").to_dict()


def test_generated_events_share_no_name_or_figure_and_repeat_from_their_seed() -> None:
    found = events(300, seed=7)
    assert found == events(300, seed=7)
    assert found != events(300, seed=8)
    names = [n for e in found for n in (e.org.split()[0], e.partner.split()[0], e.town, e.person.split()[1])]
    assert len(names) == len(set(names))
    for figure in ("amount", "count", "members"):
        assert len({getattr(e, figure) for e in found}) == len(found), figure


def test_the_matcher_keeps_generated_events_apart_and_their_write_ups_together() -> None:
    found = events(EVENTS, seed=20261207)
    pages = [(e, v, _page(e, v)) for e in found for v in range(VARIANTS)]
    assert {p["language"] for _, _, p in pages} == {"en", "de"}
    matcher = Matcher()
    # Every pair of write-ups of different events published within the window (others are apart on
    # their dates alone), and every pair of write-ups of one event.
    apart = [
        (a, b)
        for a, b in itertools.combinations(pages, 2)
        if a[0] is not b[0] and abs((a[0].day - b[0].day).days) <= WINDOW_DAYS
    ]
    together = [(a, b) for a, b in itertools.combinations(pages, 2) if a[0] is b[0]]
    decided = matcher.decide_many([(a[2], b[2]) for a, b in apart + together])
    merged = [
        (a[0].key, a[1], b[0].key, b[1], d)
        for (a, b), d in zip(apart, decided[: len(apart)], strict=True)
        if not isinstance(d, Exception) and d.same
    ]
    missed = [
        (a[0].key, a[1], b[1], d)
        for (a, b), d in zip(together, decided[len(apart) :], strict=True)
        if isinstance(d, Exception) or not d.same
    ]
    print(
        f"\n{EVENTS} events, {len(pages)} pages: {len(merged)} of {len(apart)} cross-event pairs within "
        f"{WINDOW_DAYS} days merged; {len(missed)} of {len(together)} same-event pairs missed"
    )
    assert len(apart) > 10 * EVENTS  # many events share a window: the test compares look-alikes
    assert merged == []
    assert missed == []
