"""Stories as operators read them (``syndicate story list/show`` and ``/api/stories``): plain dicts.

A story's ``articles`` are listed main version first, then the other versions in the main-version
order (:func:`~worker.stories.assign.ranked`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from worker.store.models import Article, Story
from worker.stories.assign import MAIN


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ordered(versions: list[Article]) -> list[Article]:
    return sorted(versions, key=lambda a: (a.story_role != MAIN, a.id))


def summary(story: Story, versions: list[Article]) -> dict[str, Any]:
    """``{"id", "title", "articles": [{"id", "url", "source", "language"}]}``, the main version first."""
    return {
        "id": story.id,
        "title": story.title,
        "articles": [
            {"id": a.id, "url": a.url, "source": a.source.name, "language": a.language}
            for a in _ordered(versions)
        ],
    }


def recent_stories(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` newest stories (last changed first), each as :func:`summary`."""
    stories = list(
        session.scalars(select(Story).order_by(Story.updated_at.desc(), Story.id.desc()).limit(limit))
    )
    versions: dict[int, list[Article]] = {s.id: [] for s in stories}
    if stories:
        rows = session.scalars(
            select(Article)
            .options(joinedload(Article.source))
            .where(Article.story_id.in_(list(versions)))
            .order_by(Article.id)
        )
        for article in rows:
            assert article.story_id is not None
            versions[article.story_id].append(article)
    return [summary(s, versions[s.id]) for s in stories]


def story_detail(session: Session, story_id: int) -> dict[str, Any] | None:
    """One story with every version (role, source, language, title, url, published); None if unknown."""
    story = session.get(Story, story_id)
    if story is None:
        return None
    versions = _ordered(
        list(
            session.scalars(
                select(Article).options(joinedload(Article.source)).where(Article.story_id == story_id)
            )
        )
    )
    return {
        "id": story.id,
        "title": story.title,
        "first_published": _iso(story.first_published),
        "updated_at": _iso(story.updated_at),
        "entry_key": story.entry_key,
        "main": next((a.id for a in versions if a.story_role == MAIN), None),
        "articles": [
            {
                "id": a.id,
                "role": a.story_role,
                "source": a.source.name,
                "language": a.language,
                "title": a.title,
                "url": a.url,
                "published": _iso(a.published),
                "status": a.status,
            }
            for a in versions
        ],
    }
