"""The dev set (tests/fixtures/stories/): the combination must do at least as well as the lexical baseline.

No figure is fixed here (the set grows; bench/stories.py prints the table): the test compares the
matcher's pairwise F1 with the TF-IDF cosine baseline at the baseline's own best threshold, on the
same pairs, and checks the counts the evaluation reports against the set itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.stories.evaluate import DevSet, best_threshold, combined, tfidf_baseline
from worker.stories.match import Matcher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stories"


@pytest.fixture(scope="module")
def dev() -> DevSet:
    return DevSet.load(FIXTURES)


def test_the_dev_set_is_well_formed(dev: DevSet) -> None:
    ids = [a["id"] for a in dev.articles]
    assert len(ids) == len(set(ids))
    known = set(ids)
    assert all(a in known and b in known for a, b in dev.hard_negatives)
    assert all(not dev.same(*p) for p in dev.negative_pairs())
    assert any(dev.same(*p) and dev.cross_language(*p) for p in dev.pairs())


def test_the_combination_is_at_least_as_good_as_the_tfidf_baseline(dev: DevSet) -> None:
    baseline = best_threshold(dev, tfidf_baseline(dev))
    ours = combined(dev, Matcher())
    assert ours.f1 >= baseline.f1, (ours, baseline)
    assert ours.hard_negatives_merged <= baseline.hard_negatives_merged, (ours, baseline)
    assert ours.cross_language_found >= baseline.cross_language_found, (ours, baseline)
