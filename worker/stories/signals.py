"""Pairwise signals between two articles' :class:`~worker.stories.features.Features`, each in 0..1.

Each is measured alone in bench/stories.py; :mod:`worker.stories.match` combines them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from worker.stories import dates
from worker.stories.features import Features, words


def near_verbatim(a: Features, b: Features) -> float:
    """Estimated Jaccard similarity of the two texts' 5-word shingles: a reprint is near 1."""
    if a.minhash is None or b.minhash is None:
        return 0.0
    return float(a.minhash.jaccard(b.minhash))


def overlap(a: frozenset[str], b: frozenset[str], floor: int = 3) -> float:
    """Shared items over the smaller set (at least ``floor``, so two shared names out of two is not 1)."""
    if not a or not b:
        return 0.0
    return len(a & b) / max(min(len(a), len(b)), floor)


def entities(a: Features, b: Features) -> float:
    """Shared proper names and acronyms (they survive translation between Latin-script languages)."""
    return overlap(a.entities, b.entities, floor=4)


def numbers(a: Features, b: Features) -> float:
    """Shared numbers of two or more digits (amounts, years, counts: the same in every script)."""
    return overlap(a.numbers, b.numbers, floor=3)


def links(a: Features, b: Features) -> float:
    """Shared outbound links (the same press release, report or announcement cited)."""
    return overlap(a.links, b.links, floor=1)


def quotes(a: Features, b: Features) -> float:
    """Shared 4-word shingles of quoted passages (the same statement quoted by both)."""
    return overlap(a.quotes, b.quotes, floor=3)


def shared_quotes(a: Features, b: Features) -> int:
    """How many 4-word shingles of quoted passages the two have in common (8: 11 words quoted alike)."""
    return len(a.quotes & b.quotes)


def lexical(a: Features, b: Features) -> float:
    """Cosine of the title + lead word vectors (sublinear term frequency)."""
    small, large = (a.lexical, b.lexical) if len(a.lexical) <= len(b.lexical) else (b.lexical, a.lexical)
    return min(1.0, sum(v * large.get(w, 0.0) for w, v in small.items()))


def embedding(a: Features, b: Features) -> float:
    """Cosine of the multilingual title + lead embeddings (both must be computed)."""
    if a.embedding is None or b.embedding is None:
        raise ValueError("embedding signal asked for before the embeddings were computed")
    return float(np.dot(a.embedding, b.embedding))


def days_apart(a: Features, b: Features) -> float | None:
    """Days between the two publication times; None when either is unknown."""
    if a.published is None or b.published is None:
        return None
    return abs((a.published - b.published).total_seconds()) / 86400.0


def calendar_days_apart(a: Features, b: Features) -> int | None:
    """Calendar days (UTC) between the two publication dates: a date-only `published` has no hour,
    so "within 3 days" is counted in days, as a reader would."""
    if a.published is None or b.published is None:
        return None
    return abs((a.published.date() - b.published.date()).days)


def event_days_apart(a: Features, b: Features) -> float | None:
    """Days between the nearest of the days the two articles are about (publication day and the event
    dates their title and first sentence state; 0 when two overlap): a write-up published weeks after
    the event that states its date is as near the event as the press release of the day. Calendar
    days between the publication dates when either states no day; None when nothing is known."""
    if a.days and b.days:
        return dates.days_apart(list(a.days), list(b.days))
    found = calendar_days_apart(a, b)
    return None if found is None else float(found)


class TfIdf:
    """The lexical baseline: TF-IDF cosine of title + whole text, IDF fitted on a given set of texts."""

    def __init__(self, corpus: Iterable[str]) -> None:
        docs = [set(words(text)) for text in corpus]
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc)
        n = len(docs)
        self.idf = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}

    def vector(self, text: str) -> dict[str, float]:
        counts = Counter(words(text))
        weights = {w: (1.0 + math.log(c)) * self.idf.get(w, 1.0) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        return {w: v / norm for w, v in weights.items()}

    @staticmethod
    def cosine(a: dict[str, float], b: dict[str, float]) -> float:
        if len(a) > len(b):
            a, b = b, a
        return sum(v * b.get(w, 0.0) for w, v in a.items())

    def similarities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [self.vector(t) for t in texts]
