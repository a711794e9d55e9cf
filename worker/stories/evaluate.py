"""Pairwise evaluation of the matcher on a labelled set (tests/fixtures/stories/): used by
bench/stories.py for its table and by the test that keeps the combination ahead of the baseline.

Every unordered pair of articles in the set is a case: "same" when both carry the same ``story``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.stories import signals
from worker.stories.features import Features
from worker.stories.match import Matcher


@dataclass(frozen=True)
class DevSet:
    articles: list[dict[str, Any]]
    hard_negatives: list[tuple[str, str]]

    @classmethod
    def load(cls, folder: Path) -> DevSet:
        articles = _jsonl(folder / "articles.jsonl")
        negatives = [(n["a"], n["b"]) for n in _jsonl(folder / "hard_negatives.jsonl")]
        return cls(articles, negatives)

    def pairs(self) -> list[tuple[int, int]]:
        n = len(self.articles)
        return [(i, j) for i in range(n) for j in range(i + 1, n)]

    def same(self, i: int, j: int) -> bool:
        return bool(self.articles[i]["story"] == self.articles[j]["story"])

    def cross_language(self, i: int, j: int) -> bool:
        return bool(self.articles[i].get("language") != self.articles[j].get("language"))

    def negative_pairs(self) -> set[tuple[int, int]]:
        index = {a["id"]: n for n, a in enumerate(self.articles)}
        found = set()
        for a, b in self.hard_negatives:
            if a in index and b in index:
                i, j = sorted((index[a], index[b]))
                found.add((i, j))
        return found


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Scores:
    """Pairwise precision, recall and F1, and the counts the issue asks for."""

    precision: float
    recall: float
    f1: float
    threshold: float | None
    hard_negatives_merged: int
    hard_negatives: int
    cross_language_found: int
    cross_language: int


def score(dev: DevSet, predicted: set[tuple[int, int]], threshold: float | None = None) -> Scores:
    """Scores of the set of pairs predicted "same"."""
    gold = {p for p in dev.pairs() if dev.same(*p)}
    true_positive = len(predicted & gold)
    precision = true_positive / len(predicted) if predicted else 1.0
    recall = true_positive / len(gold) if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    negatives = dev.negative_pairs()
    cross = {p for p in gold if dev.cross_language(*p)}
    return Scores(
        precision,
        recall,
        f1,
        threshold,
        len(predicted & negatives),
        len(negatives),
        len(predicted & cross),
        len(cross),
    )


def best_threshold(dev: DevSet, values: dict[tuple[int, int], float]) -> Scores:
    """The scores of ``value >= t`` at the ``t`` with the best F1 (ties: the higher precision, then the
    lower ``t``). One sweep down the sorted values (every value a threshold: scoring each anew was
    quadratic, minutes for the embedding's 16,000 distinct values)."""
    gold = {p for p in dev.pairs() if dev.same(*p)}
    negatives = dev.negative_pairs()
    cross = {p for p in gold if dev.cross_language(*p)}
    ranked = sorted(((v, p) for p, v in values.items() if v > 0), key=lambda item: -item[0])
    best: Scores | None = None
    true_positive = merged = cross_found = 0
    for n, (value, pair) in enumerate(ranked, start=1):
        true_positive += pair in gold
        merged += pair in negatives
        cross_found += pair in cross
        if n < len(ranked) and ranked[n][0] == value:
            continue  # the threshold takes every pair of this value
        precision = true_positive / n
        recall = true_positive / len(gold) if gold else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        found = Scores(precision, recall, f1, value, merged, len(negatives), cross_found, len(cross))
        # going down, a tie replaces the best: the lower threshold wins it
        if best is None or (found.f1, found.precision) >= (best.f1, best.precision):
            best = found
    return best or score(dev, set(), None)


def tfidf_baseline(dev: DevSet) -> dict[tuple[int, int], float]:
    """TF-IDF cosine of title + text for every pair, IDF fitted on the set itself."""
    texts = [f"{a.get('title') or ''}\n{a.get('content_text') or ''}" for a in dev.articles]
    model = signals.TfIdf(texts)
    vectors = [model.vector(t) for t in texts]
    return {(i, j): model.cosine(vectors[i], vectors[j]) for i, j in dev.pairs()}


SIGNALS: dict[str, Callable[[Features, Features], float]] = {
    "near-verbatim (MinHash)": signals.near_verbatim,
    "proper names": signals.entities,
    "numbers": signals.numbers,
    "links": signals.links,
    "quotes": signals.quotes,
    "title+lead words": signals.lexical,
    "embedding (title+lead)": signals.embedding,
}


def signal_values(
    dev: DevSet, features: Sequence[Features], pairs: Iterable[tuple[int, int]]
) -> dict[str, dict[tuple[int, int], float]]:
    """Each signal alone for every pair (the features must already carry their embeddings)."""
    pairs = list(pairs)
    return {name: {(i, j): fn(features[i], features[j]) for i, j in pairs} for name, fn in SIGNALS.items()}


def combined(dev: DevSet, matcher: Matcher) -> Scores:
    """The matcher's own decisions on every pair."""
    predicted = {(i, j) for i, j in dev.pairs() if matcher.decide(dev.articles[i], dev.articles[j]).same}
    return score(dev, predicted)
