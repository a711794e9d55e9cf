"""The normalized :class:`Article` record, its documented JSON form and its summary helper.

The JSON form (``syndicate scrape``, the API) has these keys: ``url``, ``canonical_url``, ``title``,
``published``, ``updated`` (ISO 8601; a date-only source stays a date, ``"2019-03-06"``), ``authors``,
``categories``, ``tags``, ``summary``, ``content_html`` (sanitized, absolute URLs), ``content_text``,
``image``, ``language``, ``site_name``, ``word_count``, plus ``content_hash``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.normalize.dates import to_utc

SUMMARY_LIMIT = 300
_WORD = re.compile(r"\w+")


def summarize(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Collapse whitespace and cut to ``limit`` characters on a word boundary, ending with "…" if cut."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if flat[limit - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-\u2013\u2014") + "…"


def _iso(value: datetime | None) -> str | None:
    return to_utc(value).isoformat() if value else None


def _public(value: datetime | None, has_time: bool) -> str | None:
    if value is None:
        return None
    return _iso(value) if has_time else to_utc(value).date().isoformat()


@dataclass(frozen=True)
class Article:
    """One article as extracted from a page. Dates are timezone-aware UTC; URLs are absolute.

    A date-only ``published``/``updated`` is midnight UTC of that very day with ``*_has_time`` False.
    ``category`` (the first of ``categories``) is what the pipeline stores.
    """

    url: str
    canonical_url: str
    title: str
    published: datetime | None
    updated: datetime | None
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    image: str | None
    content_html: str
    text: str
    language: str | None
    summary: str
    site_name: str | None = None
    published_has_time: bool = True
    updated_has_time: bool = True

    @property
    def category(self) -> str | None:
        """The first category, or None."""
        return self.categories[0] if self.categories else None

    @property
    def content_text(self) -> str:
        """The plain text of the body (the JSON key for :attr:`text`)."""
        return self.text

    @property
    def word_count(self) -> int:
        """Words in the body text (runs of word characters)."""
        return len(_WORD.findall(self.text))

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON object (see the module docstring), plus ``content_hash``."""
        return {
            "url": self.url,
            "canonical_url": self.canonical_url,
            "title": self.title,
            "published": _public(self.published, self.published_has_time),
            "updated": _public(self.updated, self.updated_has_time),
            "authors": list(self.authors),
            "categories": list(self.categories),
            "tags": list(self.tags),
            "summary": self.summary,
            "content_html": self.content_html,
            "content_text": self.text,
            "image": self.image,
            "language": self.language,
            "site_name": self.site_name,
            "word_count": self.word_count,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        """Rebuild an Article from :meth:`to_dict` output (``content_hash`` is recomputed, not read)."""

        def when(value: Any) -> datetime | None:
            return to_utc(datetime.fromisoformat(value)) if value else None

        def timed(value: Any) -> bool:
            return not (isinstance(value, str) and len(value) == 10)

        categories = data.get("categories")
        if categories is None:
            categories = [data["category"]] if data.get("category") else []
        return cls(
            url=data["url"],
            canonical_url=data.get("canonical_url") or data["url"],
            title=data.get("title") or "",
            published=when(data.get("published")),
            updated=when(data.get("updated")),
            authors=tuple(data.get("authors") or ()),
            categories=tuple(categories),
            tags=tuple(data.get("tags") or ()),
            image=data.get("image"),
            content_html=data.get("content_html") or "",
            text=data.get("content_text") or data.get("text") or "",
            language=data.get("language"),
            summary=data.get("summary") or "",
            site_name=data.get("site_name"),
            published_has_time=timed(data.get("published")),
            updated_has_time=timed(data.get("updated")),
        )

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the normalized title, publication date and text.

        URL, images and tags are left out on purpose: the same story re-fetched or syndicated under
        another address hashes the same, while any edit of its wording changes the hash.
        """

        def norm(value: str) -> str:
            return " ".join(unicodedata.normalize("NFC", value).split())

        payload = json.dumps(
            [
                "syndicate-article-v1",
                norm(self.title),
                _iso(self.published),
                [norm(paragraph) for paragraph in self.text.split("\n\n")],
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
