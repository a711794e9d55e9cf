"""The candidate keys of an article (``story_keys``): what two versions of one story are likely to share.

- ``b<band>:<hash>``: MinHash LSH bands (:data:`BANDS` bands of :data:`ROWS` hash values each): two
  texts with shingle Jaccard 0.5 share a band with probability ~0.87, at 0.3 ~0.1: reprints find
  each other.
- ``n:<name>``: folded proper names and acronyms (they survive translation between Latin-script
  languages), at most :data:`MAX_NAMES`, the title's first, then the longest (long names are rare).
- ``d:<digits>``: telling numbers (two digits or more, years left out; every script's digits are
  ASCII here), at most :data:`MAX_NUMBERS`, the longest first.
- ``l:<host/path>``: outbound links, at most :data:`MAX_LINKS`.

A key is at most :data:`KEY_CHARS` characters; a longer one keeps its start and a hash of the rest.

An article is indexed under its publication day with every key, and under the other days it is about
(an event date its title or first sentence states, :attr:`Features.days`) with its name and number keys
only: a write-up weeks later that dates the event is found from the event's days by what survives
rewording and translation, without multiplying the band rows.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime

import numpy as np

from worker.stories.features import Features, words

BANDS = 16
ROWS = 8
MAX_NAMES = 12
MAX_NUMBERS = 8
MAX_LINKS = 8
KEY_CHARS = 64
MAX_EVENT_DAYS = 31  # stated event days indexed besides the publication day
_EPOCH = date(1970, 1, 1)


def _short(key: str) -> str:
    if len(key) <= KEY_CHARS:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return f"{key[: KEY_CHARS - 17]}~{digest}"


def band_keys(features: Features) -> list[str]:
    """The LSH band keys of the article's MinHash (none for a text shorter than one shingle)."""
    minhash = features.minhash
    if minhash is None:
        return []
    values = np.asarray(minhash.hashvalues)
    rows = len(values) // BANDS
    found = []
    for band in range(BANDS):
        chunk = values[band * rows : (band + 1) * rows].astype(values.dtype.newbyteorder("<")).tobytes()
        found.append(f"b{band}:{hashlib.blake2b(chunk, digest_size=8).hexdigest()}")
    return found


def name_keys(features: Features) -> list[str]:
    """At most :data:`MAX_NAMES` name keys: names in the title first, then the longest names."""
    in_title = set(words(features.title))
    ranked = sorted(features.entities, key=lambda n: (n not in in_title, -len(n), n))
    return [_short(f"n:{name}") for name in ranked[:MAX_NAMES]]


def number_keys(features: Features) -> list[str]:
    """At most :data:`MAX_NUMBERS` telling-number keys, the longest (rarest) first."""
    ranked = sorted(features.numbers, key=lambda n: (-len(n), n))
    return [f"d:{n}"[:KEY_CHARS] for n in ranked[:MAX_NUMBERS]]


def link_keys(features: Features) -> list[str]:
    """At most :data:`MAX_LINKS` link keys."""
    return [_short(f"l:{link}") for link in sorted(features.links)[:MAX_LINKS]]


def keys_of(features: Features) -> list[str]:
    """Every candidate key of the article, without repeats."""
    found = band_keys(features) + name_keys(features) + number_keys(features) + link_keys(features)
    return list(dict.fromkeys(found))


def day_number(when: datetime | date) -> int:
    """Days since 1970-01-01 (UTC) of ``when``: the ``day`` column of ``story_keys``."""
    if isinstance(when, datetime):
        when = (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)).date()
    return (when - _EPOCH).days


def event_days(features: Features, day: int) -> list[int]:
    """The days other than ``day`` (the publication day) the article is about, at most
    :data:`MAX_EVENT_DAYS`, nearest to ``day`` first."""
    found = {
        day_number(start) + offset for start, end in features.days for offset in range((end - start).days + 1)
    }
    found.discard(day)
    return sorted(found, key=lambda d: (abs(d - day), d))[:MAX_EVENT_DAYS]


def rows_of(features: Features, day: int) -> list[tuple[str, int]]:
    """The ``(key, day)`` rows the article is indexed under (see the module docstring)."""
    rows = [(key, day) for key in keys_of(features)]
    lasting = name_keys(features) + number_keys(features)
    rows += [(key, other) for other in event_days(features, day) for key in dict.fromkeys(lasting)]
    return rows


def day_spans(days: list[int], window_days: float) -> list[tuple[int, int]]:
    """The merged day ranges within ``window_days`` of any of ``days`` (what a lookup reads)."""
    spans: list[tuple[int, int]] = []
    for low, high in sorted(day_span(d, window_days) for d in days):
        if spans and low <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], high))
        else:
            spans.append((low, high))
    return spans


def day_span(day: int, window_days: float) -> tuple[int, int]:
    """The days whose articles may be the same story as one published on ``day``: the matcher never
    joins articles more than ``window_days`` calendar days apart."""
    reach = math.floor(window_days)
    return day - reach, day + reach
