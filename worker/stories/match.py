"""The one decision: do two articles report the same story? Used by the pipeline and `story match`.

How it decides (thresholds tuned on tests/fixtures/stories/ only; bench/stories.py prints each
signal's precision and recall there):

1. More than ``window_days`` calendar days apart (default 3): not the same story, whatever the text
   says (the same partners signing again a year later is another story). The days compared are those
   each article is about: its publication day and the event dates its title and first sentence state
   ("In the end of January, ..." in a write-up of 6 March), else the publication dates.
2. Near-verbatim copies (MinHash Jaccard of 5-word shingles >= ``verbatim``): the same story; a
   reprinted press release is decided without the model.
3. The same statement quoted by both (``quote_shingles`` 4-word shingles of quoted passages in common:
   a quoted sentence of a dozen words or more, word for word) and most names shared (proper names
   overlap >= ``quote_entities``): the same story.
4. A pair within the window only through a date one of them states (published more than
   ``window_days`` apart) is the same story only by rule 2 or 3: a date read from a lead is weaker
   evidence than the publication day, and a write-up weeks later shares the boilerplate of every
   article its organisations published on the event's day (the dev set's one hard negative merged
   on event days was such a pair); what survives a late rewording is the copied text or the quote.
5. Otherwise a weighted sum of the multilingual embedding of title + lead (rescaled: e5 puts unrelated
   texts near 0.75 cosine), shared proper names, numbers, links and quotes, and the title + lead word
   cosine; the same story when it reaches ``threshold``. The model runs only when its answer can change
   the decision: not for pairs the other signals decide whatever the embedding says, nor for pairs
   with nothing in common (no shared word, name or number, same language).

:class:`Matcher` caches each article's features (and its embedding, computed only when a pair needs
it), so deciding thousands of pairs costs one feature extraction per distinct article.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.errors import MatchInputError
from worker.stories import signals
from worker.stories.embed import Embedder, shared_embedder
from worker.stories.features import Features, extract

__all__ = ["Decision", "MatchConfig", "MatchInputError", "Matcher", "decide"]


@dataclass(frozen=True)
class MatchConfig:
    """The decision's knobs (defaults tuned on the dev set)."""

    window_days: float = 3.0
    verbatim: float = 0.5
    quote_shingles: int = 8  # 4-word shingles: 11 words or more quoted identically
    quote_entities: float = 0.5
    threshold: float = 0.42
    # e5 cosine rescaled to 0..1 between these (unrelated texts sit near the floor). A translation
    # loses some cosine, so cross-language pairs get a lower range than same-language ones.
    embedding_same_language: tuple[float, float] = (0.88, 0.98)
    embedding_cross_language: tuple[float, float] = (0.75, 0.90)
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "embedding": 0.3,
            "numbers": 0.3,
            "lexical": 0.15,
            "entities": 0.1,
            "links": 0.05,
            "quotes": 0.05,
        }
    )


@dataclass(frozen=True)
class Decision:
    """The answer for one pair: ``same`` and a ``score`` in 0..1 (``same`` iff score >= 0.5)."""

    same: bool
    score: float
    signals: dict[str, float]
    reason: str


class Matcher:
    """Decides many pairs with one loaded model and a cache of per-article features.

    ``embedder=None`` loads the process-wide model on first need; ``use_embeddings=False`` decides on
    the lexical and entity signals alone (for measuring them).
    """

    def __init__(
        self,
        config: MatchConfig | None = None,
        *,
        embedder: Embedder | None = None,
        use_embeddings: bool = True,
        cache_size: int = 2_000,  # ~14 KB of features each (embedding included: 1.5 KB)
    ) -> None:
        self.config = config or MatchConfig()
        self._embedder = embedder
        self.use_embeddings = use_embeddings
        self._cache: OrderedDict[str, Features] = OrderedDict()
        # pairs decided, pairs that needed the model, articles embedded (bench/stories.py prints them)
        self.stats: Counter[str] = Counter()
        self._cache_size = cache_size

    def features(self, article: dict[str, Any]) -> Features:
        """The article's features, from the cache when the same article was seen before."""
        key = _key(article)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        found = extract(article)
        self._cache[key] = found
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return found

    def _model(self) -> Embedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    def embed(self, *features: Features) -> None:
        """Compute the embeddings (title + lead) of the articles that have none yet, in one batch."""
        todo = list({id(f): f for f in features if f.embedding is None}.values())
        self.stats["articles embedded"] += len(todo)
        if todo:
            vectors = self._model().embed_many([f.lead for f in todo])
            for found, vector in zip(todo, vectors, strict=True):
                found.embedding = vector

    def measure(self, a: Features, b: Features, *, embed: bool) -> dict[str, float]:
        """Every signal of the pair (the embedding only when ``embed``)."""
        found = {
            "verbatim": signals.near_verbatim(a, b),
            "entities": signals.entities(a, b),
            "numbers": signals.numbers(a, b),
            "links": signals.links(a, b),
            "quotes": signals.quotes(a, b),
            "lexical": signals.lexical(a, b),
        }
        if embed:
            self.embed(a, b)
            found["embedding"] = signals.embedding(a, b)
        return found

    def decide(self, a: dict[str, Any], b: dict[str, Any]) -> Decision:
        """Are ``a`` and ``b`` (article dicts) the same story? :class:`MatchInputError` on bad input."""
        return self.decide_features(self.features(a), self.features(b))

    def decide_many(self, pairs: Sequence[tuple[Any, Any]]) -> list[Decision | MatchInputError]:
        """Decide many pairs, embedding every article that needs it in one batch (both cores busy).

        A pair with a bad article gets its :class:`MatchInputError` in its place; the others go on.
        """
        prepared: list[tuple[Features, Features] | MatchInputError] = []
        for a, b in pairs:
            try:
                prepared.append((self.features(a), self.features(b)))
            except MatchInputError as exc:
                prepared.append(exc)
        waiting = [
            f
            for item in prepared
            if not isinstance(item, MatchInputError) and not isinstance(self._cheap(*item), Decision)
            for f in item
        ]
        self.embed(*waiting)
        return [
            item if isinstance(item, MatchInputError) else self.decide_features(*item) for item in prepared
        ]

    def _cheap(self, a: Features, b: Features) -> Decision | dict[str, float]:
        """The decision if the cheap signals make it, else those signals (the model is still needed)."""
        cfg = self.config
        apart = signals.days_apart(a, b)
        on_event_days = signals.event_days_apart(a, b)
        if on_event_days is not None and on_event_days > cfg.window_days:
            return Decision(False, 0.0, {"days_apart": apart or 0.0}, "published too far apart")
        found = self.measure(a, b, embed=False)
        if apart is not None:
            found["days_apart"] = apart
        if found["verbatim"] >= cfg.verbatim:
            score = 0.5 + 0.5 * min(1.0, found["verbatim"])
            return Decision(True, round(score, 4), found, "near-verbatim copy")
        quoted = signals.shared_quotes(a, b)
        if quoted >= cfg.quote_shingles and found["entities"] >= cfg.quote_entities:
            score = 0.5 + 0.5 * min(1.0, found["quotes"]) * min(1.0, found["entities"])
            return Decision(True, round(score, 4), found, "the same statement quoted")
        published = signals.calendar_days_apart(a, b)
        if published is not None and published > cfg.window_days:
            return Decision(
                False, 0.0, found, "published too far apart; a stated date needs a copy or a quote"
            )
        same_language = _same_language(a, b)
        nothing_shared = not (found["lexical"] or found["entities"] or found["numbers"] or found["links"])
        if not self.use_embeddings or (same_language and nothing_shared):
            return self._combine(found, same_language=same_language, embedding=0.0)
        # The embedding can only add between 0 and its weight: when the other signals already decide
        # whatever it says, the model is not run (the answer is the same; the score is a bound).
        low = self._combine(found, same_language=same_language, embedding=0.0)
        if low.same:
            return low
        high = self._combine(found, same_language=same_language, embedding=1.0)
        if not high.same:
            return high
        return found

    def decide_features(self, a: Features, b: Features) -> Decision:
        """The decision for two articles' features (embedding them if the cheap signals cannot decide)."""
        self.stats["pairs"] += 1
        cheap = self._cheap(a, b)
        if isinstance(cheap, Decision):
            return cheap
        self.stats["pairs that needed the model"] += 1
        self.embed(a, b)
        cheap["embedding"] = signals.embedding(a, b)
        return self._combine(cheap, same_language=_same_language(a, b))

    def _combine(
        self, found: dict[str, float], *, same_language: bool, embedding: float | None = None
    ) -> Decision:
        """The weighted sum against the threshold; ``embedding`` (0..1) stands in for an uncomputed one."""
        cfg = self.config
        floor, ceiling = cfg.embedding_same_language if same_language else cfg.embedding_cross_language
        scaled = dict(found)
        if embedding is None:
            embedding = (found["embedding"] - floor) / (ceiling - floor)
        scaled["embedding"] = min(1.0, max(0.0, embedding))
        weights = cfg.weights
        if not self.use_embeddings:
            weights = {k: v for k, v in weights.items() if k != "embedding"}
        total = sum(weights.values()) or 1.0
        combined = sum(w * min(1.0, scaled[k]) for k, w in weights.items()) / total
        # Map the threshold to 0.5 so that `same` is always `score >= 0.5`.
        t = cfg.threshold
        score = combined / t * 0.5 if combined < t else 0.5 + (combined - t) / (1 - t) * 0.5
        return Decision(combined >= t, round(min(1.0, score), 4), found, "combined signals")


def _same_language(a: Features, b: Features) -> bool:
    return bool(a.language) and a.language == b.language


def _key(article: dict[str, Any]) -> str:
    """A cache key for the article: its whole content, so an edited article is seen anew."""
    if not isinstance(article, dict):
        raise MatchInputError(f"an article must be a JSON object, not {type(article).__name__}")
    wanted = {k: article.get(k) for k in ("url", "title", "content_text", "published", "language", "links")}
    return hashlib.blake2b(
        json.dumps(wanted, sort_keys=True, default=str).encode(), digest_size=16
    ).hexdigest()


_default: Matcher | None = None


def decide(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, float]:
    """``(same, score)`` for two article dicts, with the process-wide :class:`Matcher`."""
    global _default
    if _default is None:
        _default = Matcher()
    decision = _default.decide(a, b)
    return decision.same, decision.score
