"""The normalized :class:`Article` record and its summary helper."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.normalize.dates import to_utc

SUMMARY_LIMIT = 300


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


@dataclass(frozen=True)
class Article:
    """One article as extracted from a page. Dates are timezone-aware UTC; URLs are absolute."""

    url: str
    canonical_url: str
    title: str
    published: datetime | None
    updated: datetime | None
    authors: tuple[str, ...]
    category: str | None
    tags: tuple[str, ...]
    image: str | None
    content_html: str
    text: str
    language: str | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: ISO 8601 dates, lists for tuples, plus ``content_hash``."""
        return {
            "url": self.url,
            "canonical_url": self.canonical_url,
            "title": self.title,
            "published": _iso(self.published),
            "updated": _iso(self.updated),
            "authors": list(self.authors),
            "category": self.category,
            "tags": list(self.tags),
            "image": self.image,
            "content_html": self.content_html,
            "text": self.text,
            "language": self.language,
            "summary": self.summary,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        """Rebuild an Article from :meth:`to_dict` output (``content_hash`` is recomputed, not read)."""

        def when(value: Any) -> datetime | None:
            return to_utc(datetime.fromisoformat(value)) if value else None

        return cls(
            url=data["url"],
            canonical_url=data.get("canonical_url") or data["url"],
            title=data.get("title") or "",
            published=when(data.get("published")),
            updated=when(data.get("updated")),
            authors=tuple(data.get("authors") or ()),
            category=data.get("category"),
            tags=tuple(data.get("tags") or ()),
            image=data.get("image"),
            content_html=data.get("content_html") or "",
            text=data.get("text") or "",
            language=data.get("language"),
            summary=data.get("summary") or "",
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
