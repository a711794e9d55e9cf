"""The embedder: a batch shared among threads gives exactly the vectors of one call, in order."""

from __future__ import annotations

import numpy as np

from tests.stories.pairs import CLUSTER_HACKATHON, PARTNERSHIP_AR, PARTNERSHIP_EN, PARTNERSHIP_RO
from worker.stories.embed import DIM, Embedder, _split


def test_a_batch_split_among_threads_gives_the_vectors_of_one_call_in_order() -> None:
    texts = [
        a["title"] + ". " + a["content_text"][:n]
        for a in (PARTNERSHIP_EN, PARTNERSHIP_RO, PARTNERSHIP_AR, CLUSTER_HACKATHON)
        for n in (0, 40, 100)
    ] + [""]
    one = Embedder(threads=1).embed_many(texts)
    two = Embedder(threads=2).embed_many(texts)
    assert len(two) == len(texts) and all(v.shape == (DIM,) for v in two)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # not all alike: the order was kept, not one vector repeated
    assert float(np.dot(two[0], two[-2])) < 0.999


def test_the_parts_are_about_equal_in_characters() -> None:
    texts = ["x" * n for n in (500, 400, 300, 200, 100, 100)]
    parts = _split(texts, 2)
    assert sorted(i for part in parts for i in part) == list(range(len(texts)))
    sizes = [sum(len(texts[i]) for i in part) for part in parts]
    assert abs(sizes[0] - sizes[1]) <= 100
    assert _split(["one"], 4) == [[0]]
