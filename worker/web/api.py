"""API routes: push an article, preview its posts, retry failed work, list, merge and split stories."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy.exc import IntegrityError

from worker import storage
from worker.actions import retry_article, retry_share
from worker.errors import BlockedURL, StoryChangeError, TransientFetchError
from worker.ingest import PushedArticle, ingest_article
from worker.outbox.operator import preview_article
from worker.runtime import Runtime
from worker.store.models import Article, Share
from worker.stories import edit
from worker.stories.views import recent_stories, story_detail
from worker.tasks import deliver_share, process_article, schedule_renders
from worker.web.auth import RT, require_token
from worker.web.handlers import EXCERPT_CHARS, clip
from worker.web.models import (
    ERROR_RESPONSES,
    RETRY_RESPONSES,
    STORY_RESPONSES,
    IngestAccepted,
    IngestRequest,
    MergeRequest,
    RetryQueued,
)

log = logging.getLogger(__name__)


def refuse_unfetchable(r: Runtime, field: str, url: str) -> None:
    """Answer 422 for a pushed URL the fetcher would refuse as an ingest URL.

    Ingest URLs obey ``fetch.allow_hosts`` and can never reach Syndicate's own web app, Flower or
    Redis ports on this host (see :mod:`worker.fetch.http`); the fetch checks again, on every
    redirect hop. A host that does not resolve now is left for the fetch to retry.
    """
    try:
        r.fetcher.check(url, ingest=True)
    except BlockedURL as exc:
        raise HTTPException(422, f"{field}: {exc}") from None
    except TransientFetchError:
        pass


def store_pushed(r: Runtime, payload: IngestRequest) -> tuple[int, bool]:
    """Store a validated push; ``(id, created)``.

    Two pushes of one new URL at the same moment both find no row and both insert; the loser's
    unique-URL violation means the row now exists, so it is pushed once more as an update.
    """
    item = PushedArticle(
        url=str(payload.url),
        html=payload.html,
        title=payload.title,
        content_html=payload.content_html,
        summary=payload.summary,
        published=payload.published,
        authors=tuple(payload.authors),
        category=payload.category,
        tags=tuple(payload.tags),
        image=str(payload.image) if payload.image else None,
        language=payload.language,
        source=payload.source,
    )
    try:
        return ingest_article(r, item)
    except IntegrityError:
        return ingest_article(r, item)


def add_api_routes(app: FastAPI) -> None:
    """``/api/articles`` (push, preview, retry, split), ``/api/shares/{id}/retry`` and ``/api/stories``."""

    @app.post(
        "/api/articles",
        status_code=202,
        dependencies=[Depends(require_token)],
        response_model=IngestAccepted,
        responses=ERROR_RESPONSES,
    )
    def ingest(payload: IngestRequest, r: RT) -> dict[str, Any]:
        """Accept a pushed article; it flows through the same pipeline as crawled ones."""
        if payload.source and payload.source not in {s.name for s in r.config.sources}:
            raise HTTPException(422, f"source: no source named {clip(payload.source, EXCERPT_CHARS)!r}")
        if payload.html is None and payload.title is None:  # only then is the URL itself fetched
            refuse_unfetchable(r, "url", str(payload.url))
        if payload.image:
            refuse_unfetchable(r, "image", str(payload.image))
        article_id, created = store_pushed(r, payload)
        storage.note_ok(r.redis_client, "ingest")
        try:
            process_article.delay(article_id)
        except Exception as exc:  # the article is stored; the sweeper re-enqueues pending ones
            log.warning("could not enqueue article %s: %s", article_id, exc)
            return {"id": article_id, "created": created, "status": "stored, queue unavailable"}
        return {"id": article_id, "created": created, "status": "queued"}

    # ``path``: a ref may be the article URL, slashes and all.
    @app.get("/api/articles/{ref:path}/preview", dependencies=[Depends(require_token)])
    def preview(ref: str, r: RT, endpoint: str | None = None) -> list[dict[str, Any]]:
        """What each endpoint (or ``?endpoint=NAME``) would receive for an article; nothing is sent."""
        try:
            return preview_article(r, ref, endpoint)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    @app.post(
        "/api/shares/{share_id}/retry",
        dependencies=[Depends(require_token)],
        response_model=RetryQueued,
        responses=RETRY_RESPONSES,
    )
    def retry_share_route(share_id: int, r: RT) -> dict[str, Any]:
        """Put a failed or uncertain share back in the outbox and enqueue its delivery."""
        with r.session() as session:
            if session.get(Share, share_id) is None:
                raise HTTPException(404, f"no share with id {share_id}")
        if not retry_share(r, share_id):
            raise HTTPException(409, f"share {share_id} is not failed or uncertain")
        return _enqueue_retry(deliver_share, share_id)

    @app.post(
        "/api/articles/{article_id}/retry",
        dependencies=[Depends(require_token)],
        response_model=RetryQueued,
        responses=RETRY_RESPONSES,
    )
    def retry_article_route(article_id: int, r: RT) -> dict[str, Any]:
        """Put a failed article back to pending and enqueue its processing (fetch, normalize, feeds)."""
        with r.session() as session:
            if session.get(Article, article_id) is None:
                raise HTTPException(404, f"no article with id {article_id}")
            retried = retry_article(session, article_id)
        if not retried:
            raise HTTPException(409, f"article {article_id} is not failed")
        return _enqueue_retry(process_article, article_id)

    add_story_routes(app)


def add_story_routes(app: FastAPI) -> None:
    """``/api/stories``: list and show stories; merge two, split an article out (the CLI's story commands)."""

    def changed(r: Runtime, done: edit.Changed) -> dict[str, Any]:
        renders = "queued"
        try:
            schedule_renders(done.feeds)
        except Exception as exc:  # committed: the feeds show it at their next render
            log.warning("could not schedule the renders of %s: %s", done.feeds, exc)
            renders = "queue unavailable"
        with r.session() as session:
            story = story_detail(session, done.story_id)
        return {"story": story, "feeds": done.feeds, "renders": renders}

    @app.get("/api/stories", dependencies=[Depends(require_token)])
    def stories(r: RT, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
        """The newest stories, each ``{"id", "title", "articles": [{"id", "url", "source", "language"}]}``,
        the main version first."""
        with r.session() as session:
            return recent_stories(session, limit=limit)

    @app.get("/api/stories/{story_id}", dependencies=[Depends(require_token)], responses=STORY_RESPONSES)
    def story(story_id: int, r: RT) -> dict[str, Any]:
        """One story and its versions (role, source, language, title, URL, published)."""
        with r.session() as session:
            found = story_detail(session, story_id)
        if found is None:
            raise HTTPException(404, f"no story with id {story_id}")
        return found

    @app.post(
        "/api/stories/{story_id}/merge", dependencies=[Depends(require_token)], responses=STORY_RESPONSES
    )
    def merge_stories(story_id: int, body: MergeRequest, r: RT) -> dict[str, Any]:
        """Merge story ``other`` into this one (this one keeps its feed entry); the feeds re-render."""
        try:
            done = edit.merge(r, story_id, body.other)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except StoryChangeError as exc:
            raise HTTPException(409, str(exc)) from None
        return changed(r, done)

    @app.post(
        "/api/articles/{article_id}/split", dependencies=[Depends(require_token)], responses=STORY_RESPONSES
    )
    def split_article(article_id: int, r: RT) -> dict[str, Any]:
        """Take an article out of its story into a new one; it never rejoins that story."""
        try:
            done = edit.split(r, article_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except StoryChangeError as exc:
            raise HTTPException(409, str(exc)) from None
        return changed(r, done)


def _enqueue_retry(task: Any, row_id: int) -> dict[str, Any]:
    try:
        task.delay(row_id)
    except Exception as exc:  # the row is pending: the sweeper re-enqueues it
        log.warning("could not enqueue retry of %s: %s", row_id, exc)
        return {"id": row_id, "status": "pending, queue unavailable"}
    return {"id": row_id, "status": "queued"}
