"""Which version of a story is its main one: the one rule feeds, the store and the share planner share.

Source priority (higher first), then the position of the article's language in the preferred
languages (listed before unlisted), then the earliest ``published`` (else ``first_seen_at``), then the
lowest id. Sort a story's versions by :func:`version_order`; the first is the main version.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol


class Version(Protocol):
    """What the rule reads of an article (an :class:`~worker.store.models.Article` row has it all)."""

    @property
    def id(self) -> int: ...

    @property
    def language(self) -> str | None: ...

    @property
    def published(self) -> datetime | None: ...

    @property
    def first_seen_at(self) -> datetime: ...


def _primary(language: str | None) -> str:
    """ "en-US", "EN" and "en_gb" all compare as "en"."""
    return (language or "").strip().lower().replace("_", "-").split("-")[0]


def language_rank(language: str | None, languages: Sequence[str]) -> int:
    """The position of ``language`` in ``languages`` (primary subtags compared); unlisted: after all."""
    wanted = _primary(language)
    if wanted:
        for position, preferred in enumerate(languages):
            if _primary(preferred) == wanted:
                return position
    return len(languages)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def version_order(
    article: Version, priority: int, languages: Sequence[str]
) -> tuple[int, int, datetime, int]:
    """The sort key of one version: the smallest key is the story's main version.

    ``priority`` is the article's source priority (``config.source(name).priority``), ``languages``
    the preferred languages (``config.stories.languages`` for the feeds, an endpoint's ``languages``
    at delivery).
    """
    when = article.published if article.published is not None else article.first_seen_at
    return (-priority, language_rank(article.language, languages), _utc(when), article.id)
