"""Features as the store keeps them (``story_features.data``), so candidates are never re-extracted.

The bytes: a 4-byte length, a zlib-compressed JSON header (the text features: sets as sorted lists,
the title + lead word weights, the MinHash's seed, scheme and dtype), then the MinHash hash values and
the embedding as raw little-endian arrays (float16: half the bytes, cosine within ~1e-3, far below
what moves a decision). :data:`VERSION` changes whenever the layout or what
:func:`~worker.stories.features.extract` computes changes; rows of another version are re-extracted
from the article (see :func:`worker.stories.assign.features_of`).
"""

from __future__ import annotations

import json
import struct
import zlib
from datetime import date, datetime
from typing import Any

import numpy as np
from datasketch import LeanMinHash

from worker.stories.embed import DIM
from worker.stories.features import Features

VERSION = 2  # 2: the days the article is about (Features.days)
_HEAD = struct.Struct("<I")
_EMBEDDING_DTYPE = np.dtype("<f2")


def dump(features: Features) -> bytes:
    """The stored form of ``features`` (embedding included when computed)."""
    minhash = features.minhash
    hashes = b""
    header: dict[str, Any] = {
        "language": features.language,
        "published": features.published.isoformat() if features.published else None,
        "title": features.title,
        "lead": features.lead,
        "shingle_count": features.shingle_count,
        "entities": sorted(features.entities),
        "numbers": sorted(features.numbers),
        "links": sorted(features.links),
        "quotes": sorted(features.quotes),
        "lexical": features.lexical,
        "days": [[start.isoformat(), end.isoformat()] for start, end in features.days],
        "minhash": None,
        "embedding": features.embedding is not None,
    }
    if minhash is not None:
        values = np.asarray(minhash.hashvalues)
        dtype = values.dtype.newbyteorder("<")
        hashes = values.astype(dtype).tobytes()
        header["minhash"] = {"seed": int(minhash.seed), "scheme": minhash.scheme, "dtype": dtype.str}
    packed = zlib.compress(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode(), 6)
    embedding = b""
    if features.embedding is not None:
        embedding = np.asarray(features.embedding).astype(_EMBEDDING_DTYPE).tobytes()
    return _HEAD.pack(len(packed)) + packed + hashes + embedding


def load(data: bytes) -> Features:
    """The :class:`Features` stored by :func:`dump` (ValueError if the bytes are not such a record)."""
    try:
        (size,) = _HEAD.unpack_from(data)
        header = json.loads(zlib.decompress(data[_HEAD.size : _HEAD.size + size]))
    except (struct.error, zlib.error, ValueError) as exc:
        raise ValueError(f"not stored story features: {exc}") from None
    rest = memoryview(data)[_HEAD.size + size :]
    minhash: LeanMinHash | None = None
    found = header["minhash"]
    if found is not None:
        dtype = np.dtype(found["dtype"])
        count = (
            len(rest) - (DIM * _EMBEDDING_DTYPE.itemsize if header["embedding"] else 0)
        ) // dtype.itemsize
        values = np.frombuffer(rest[: count * dtype.itemsize], dtype=dtype).astype(dtype.newbyteorder("="))
        minhash = LeanMinHash(seed=found["seed"], hashvalues=values, scheme=found["scheme"])
        rest = rest[count * dtype.itemsize :]
    embedding = None
    if header["embedding"]:
        embedding = np.frombuffer(rest, dtype=_EMBEDDING_DTYPE).astype(np.float32)
        if embedding.shape != (DIM,):
            raise ValueError(f"not stored story features: an embedding of {embedding.shape} values")
    published = header["published"]
    return Features(
        language=header["language"],
        published=datetime.fromisoformat(published) if published else None,
        title=header["title"],
        lead=header["lead"],
        minhash=minhash,
        shingle_count=header["shingle_count"],
        entities=frozenset(header["entities"]),
        numbers=frozenset(header["numbers"]),
        links=frozenset(header["links"]),
        quotes=frozenset(header["quotes"]),
        lexical=header["lexical"],
        embedding=embedding,
        days=tuple((date.fromisoformat(a), date.fromisoformat(b)) for a, b in header.get("days", ())),
    )
