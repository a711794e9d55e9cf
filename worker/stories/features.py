"""What the matcher keeps of one article: computed once, then compared with many others.

Everything here is pure and cheap (a few milliseconds of CPU for a 1,000-word article); the embedding,
the one costly feature, is computed lazily by the matcher and only when a pair needs it.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import regex
from datasketch import MinHash

from worker.errors import MatchInputError
from worker.stories import dates
from worker.stories.embed import Vector

NUM_PERM = 128  # MinHash permutations: Jaccard estimated within ~0.05 (one standard deviation)
SHINGLE = 5  # words per shingle: long enough that only copied text shares many
LEAD_CHARS = 100  # of content_text after the title, for the embedding (CPU grows with length)
LEXICAL_CHARS = 600  # of content_text after the title, for the title+lead cosine

_WORD = regex.compile(r"[\p{L}\p{N}]+(?:['\u2019][\p{L}]+)?")
_NUMBER = regex.compile(r"\p{N}+(?:[.,]\p{N}+)*")
_URL = regex.compile(r"https?://[^\s<>\"'()]+")
_QUOTE = regex.compile(r"[\"“”«»„](?P<q>[^\"“”«»„]{20,400})[\"“”«»„]")
_PROPER = regex.compile(r"(?<![.!?]\s|^)\b(?:\p{Lu}[\p{L}\p{M}'\u2019-]{2,}|\p{Lu}{2,})")


class _Marks(dict[int, int | None]):
    """``str.translate`` table dropping combining marks, filled as code points are met (a character
    at a time in Python was a third of the features' CPU)."""

    def __missing__(self, code: int) -> int | None:
        found = None if unicodedata.combining(chr(code)) else code
        self[code] = found
        return found


_MARKS = _Marks()

# MinHash's permutations depend only on its seed and size: drawn once, not for every article (drawing
# them was a sixth of the features' CPU). The hash values are the same.
_PERMUTATIONS = MinHash(num_perm=NUM_PERM)


def fold(text: str) -> str:
    """Lower case without diacritics: "România" and "Romania", "Köln" and "Koln" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return decomposed if decomposed.isascii() else decomposed.translate(_MARKS)


def words(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits of every script)."""
    return _WORD.findall(fold(text))


def _digits(token: str) -> str:
    """A number's digits in ASCII ("٢٠١٩" -> "2019"), separators dropped ("1,200" -> "1200")."""
    return "".join(str(unicodedata.digit(c)) for c in token if unicodedata.digit(c, None) is not None)


def _telling(number: str) -> bool:
    """Numbers that tell events apart: two digits or more, and not a year (articles in one window
    share it anyway, and "2019" in a background sentence would tie unrelated stories)."""
    return len(number) >= 2 and not (len(number) == 4 and number[:2] in ("19", "20"))


def _link_key(url: str) -> str:
    url = url.rstrip(".,;")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: kept as written, without its scheme
        return url.split("://", 1)[-1].removeprefix("www.").rstrip("/")
    host = parts.hostname or ""
    return f"{host.removeprefix('www.')}{parts.path.rstrip('/')}"


def parse_published(value: Any) -> datetime | None:
    """``published`` as `syndicate scrape` prints it (ISO date or date-time), in UTC; None if absent."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MatchInputError(f"published must be an ISO date string, not {type(value).__name__}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError as exc:
        raise MatchInputError(f"published {value!r} is not an ISO date: {exc}") from None
    except OverflowError as exc:  # year 1 or 9999 moved across midnight UTC
        raise MatchInputError(f"published {value!r} is out of range in UTC: {exc}") from None


def _text(article: dict[str, Any], key: str) -> str:
    value = article.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MatchInputError(f"{key} must be a string, not {type(value).__name__}")
    return value


@dataclass
class Features:
    """One article's comparable parts."""

    language: str
    published: datetime | None
    title: str
    lead: str  # title and the first sentences: what is embedded
    minhash: MinHash | None  # over word shingles of the whole text; None when shorter than a shingle
    shingle_count: int
    entities: frozenset[str]  # folded proper names and acronyms
    numbers: frozenset[str]  # numbers of two or more digits, years left out
    links: frozenset[str]  # outbound links, host + path
    quotes: frozenset[str]  # folded 4-word shingles of quoted passages
    lexical: dict[str, float]  # sublinear tf of title + lead words, L2-normalised
    embedding: Vector | None = field(default=None, repr=False)
    # The days the article is about: its publication day and the dates its title and first sentence
    # state (worker/stories/dates.py), as (first, last) pairs; the matcher's date window compares these.
    days: tuple[tuple[date, date], ...] = ()


def _shingles(tokens: list[str], size: int) -> set[bytes]:
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


def _unit(counts: Counter[str]) -> dict[str, float]:
    weights = {w: 1.0 + math.log(n) for w, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
    return {w: v / norm for w, v in weights.items()}


def _lead(title: str, text: str, chars: int) -> str:
    if len(text) > chars:
        cut = text.rfind(" ", 0, chars)
        text = text[: cut if cut > chars // 2 else chars]
    return f"{title}. {text}".strip(". ") if title else text


def extract(article: dict[str, Any]) -> Features:
    """The features of one article dict (fields as `syndicate scrape` prints them; others ignored)."""
    if not isinstance(article, dict):
        raise MatchInputError(f"an article must be a JSON object, not {type(article).__name__}")
    title = _text(article, "title").strip()
    body = _text(article, "content_text").strip()
    if not title and not body:
        raise MatchInputError("the article has neither title nor content_text")
    full = f"{title}\n{body}"
    tokens = words(full)
    shingles = _shingles(tokens, SHINGLE)
    minhash: MinHash | None = None
    if shingles:
        minhash = MinHash(
            num_perm=NUM_PERM, permutations=_PERMUTATIONS.permutations, scheme=_PERMUTATIONS.scheme
        )
        minhash.update_batch(list(shingles))
    links = {_link_key(u) for u in _URL.findall(full)}
    extra_links = article.get("links")
    if isinstance(extra_links, list):
        links |= {_link_key(u) for u in extra_links if isinstance(u, str)}
    quotes: set[bytes] = set()
    for match in _QUOTE.finditer(body):
        quotes |= _shingles(words(match.group("q")), 4)
    lexical_words = [w for w in words(_lead(title, body, LEXICAL_CHARS)) if len(w) > 2 or w.isdigit()]
    language = _text(article, "language").strip().lower()[:2]
    published = parse_published(article.get("published"))
    return Features(
        language=language,
        published=published,
        title=title,
        lead=_lead(title, body, LEAD_CHARS),
        minhash=minhash,
        shingle_count=len(shingles),
        entities=frozenset(fold(m) for m in _PROPER.findall(full)),
        numbers=frozenset(d for d in (_digits(n) for n in _NUMBER.findall(full)) if _telling(d)),
        links=frozenset(links),
        quotes=frozenset(q.decode() for q in quotes),
        lexical=_unit(Counter(lexical_words)),
        days=event_days(title, body, published),
    )


def event_days(title: str, body: str, published: datetime | None) -> tuple[tuple[date, date], ...]:
    """The days the article is about, read from the title and the body's first sentence only, and
    without months stated as a whole ("in May" in a lead is often a look back at an earlier event):
    the variant that merged the fewest hard negatives in bench/story_dates.py."""
    return tuple(dates.event_days(title, body, published, sentences=1, whole_months=False))
