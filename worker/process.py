"""The process stage: fetch (unless the HTML was pushed), normalize and store one article.

Idempotent: processing an article twice changes nothing the second time (a 304 parses nothing, an
unchanged body changes no row). Failures are recorded on the article: transient ones retried up to
:data:`FETCH_ATTEMPTS`, permanent ones and pages without an article marked ``failed``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from bs4 import BeautifulSoup
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from worker import logs
from worker.crawl import MAX_ERROR_CHARS, short_error, store_fetch_state
from worker.errors import Disallowed, FetchError, HostBusy, NormalizeError, Retryable
from worker.fetch import Discovered, FetchResult
from worker.ingest import PushedArticle, synthesize_html
from worker.normalize import Article as NormalizedArticle
from worker.normalize import normalize
from worker.normalize.urls import normalize_url
from worker.runtime import Runtime
from worker.store.models import MAX_CATEGORY_CHARS, MAX_URL_CHARS, PUSHED_HINT, Article, FetchState, utcnow
from worker.store.queries import RETRACTED, affected_feeds, with_story_feeds

log = logging.getLogger(__name__)

# A page that fails transiently (timeouts, 5xx) this many times is failed for good, with the reason:
# one try and the process task's five retries (its backoff spaces them 2-32 s apart).
FETCH_ATTEMPTS = 6

FULL_CONTENT_MIN_CHARS = 500


def _feed_content(found: Discovered) -> str | None:
    """A document built from a feed entry's full content, or None when there is not enough of it.

    The page is always fetched for the full text; this is the fallback when the page cannot be
    read (or holds no article) but the feed carried the whole story (content:encoded, Atom content).
    """
    if not found.html or not found.title:
        return None
    if len(BeautifulSoup(found.html, "lxml").get_text(" ", strip=True)) < FULL_CONTENT_MIN_CHARS:
        return None
    return synthesize_html(PushedArticle.from_discovered(found))


@dataclass
class ProcessOutcome:
    """What processing one article changed: which feeds to re-render, whether to share."""

    article_id: int
    status: str
    changed: bool = False
    feeds: list[str] = field(default_factory=list)
    share: bool = False


def _apply(article: Article, data: NormalizedArticle) -> bool:
    """Copy normalized fields onto the row; return whether the content changed."""
    changed = article.content_hash != data.content_hash
    article.title = data.title
    article.summary = data.summary
    article.content_html = data.content_html
    article.text = data.text
    article.published = data.published
    article.updated = data.updated
    article.authors = list(data.authors)
    article.category = data.category[:MAX_CATEGORY_CHARS] if data.category else data.category
    article.tags = list(data.tags)
    article.image = data.image
    article.language = data.language
    article.content_hash = data.content_hash
    return changed


def process_article(rt: Runtime, article_id: int) -> ProcessOutcome:
    """Fetch (unless the HTML was pushed), normalize and store one article.

    An article we already hold is fetched conditionally: a 304 changes nothing and parses nothing.
    Fields the page lacks are taken from what its feed or sitemap said (``hints``); when the page
    cannot be read but the feed carried the whole story, that story is used. Transient fetch errors
    are raised for a retry (the row keeps ``pending``); a URL robots.txt forbids is ``skipped``
    (never fetched); permanent errors and pages that hold no article mark it ``failed``.
    """
    # The source comes with the row (one query, not a lazy load); validators are read only when a
    # stored article is fetched again (pushed HTML and first fetches need none).
    with rt.session() as session:
        article = session.get(Article, article_id, options=[joinedload(Article.source)])
        if article is None:
            raise LookupError(f"no article with id {article_id}")
        if article.status in ("duplicate", "skipped"):
            return ProcessOutcome(article_id, article.status)
        url, raw_html, hints = article.url, article.raw_html, dict(article.hints or {})
        source_name, source_id = article.source.name, article.source_id
        logs.bind(source=source_name)  # later log lines (and the article metrics) name the source
        held = article.content_hash is not None
        article.attempts += 1
        state = (
            session.scalar(select(FetchState).where(FetchState.url == url))
            if held and raw_html is None
            else None
        )
        etag, last_modified = (state.etag, state.last_modified) if state is not None else (None, None)
    source_config = next((s for s in rt.config.sources if s.name == source_name), None)
    default_category = source_config.category if source_config else None
    language_hint = source_config.options.get("language") if source_config else None

    def parse(document: bytes | str, where: str, content_type: str | None = None) -> NormalizedArticle:
        return normalize(
            document,
            where,
            content_type=content_type,
            default_category=default_category,
            language_hint=language_hint,
        )

    result: FetchResult | None = None
    try:
        if raw_html is not None:
            data = parse(raw_html, url)
            final_url = url
        else:
            result = rt.fetcher.get(
                url, etag=etag, last_modified=last_modified, ingest=hints.get(PUSHED_HINT) == "1"
            )
            if result.not_modified:
                _touch_fetched(rt, article_id, result, source_id)
                return ProcessOutcome(article_id, "ready")
            final_url = result.final_url
            try:
                data = parse(result.body, final_url, result.content_type)
            except NormalizeError:
                fallback = _hinted_document(url, hints)
                if fallback is None:
                    raise
                data = parse(fallback, url)
    except Disallowed as exc:
        mark_article_skipped(rt, article_id, exc)
        return ProcessOutcome(article_id, "skipped")
    except HostBusy:
        _uncount_attempt(rt, article_id)  # nothing was sent: waiting for the host's turn is no attempt
        raise
    except (FetchError, NormalizeError) as exc:
        fallback = None if isinstance(exc, Retryable) else _hinted_document(url, hints)
        if fallback is not None:
            data, final_url = parse(fallback, url), url
        else:
            if isinstance(exc, Retryable):
                if note_failed_attempt(rt, article_id, exc):
                    return ProcessOutcome(article_id, "failed")
                raise
            mark_article_failed(rt, article_id, exc)
            return ProcessOutcome(article_id, "failed")
    data = _with_hints(data, hints)

    with rt.session() as session:
        if result is not None:
            store_fetch_state(session, url, source_id, result.etag, result.last_modified, None, result.status)
        article = session.get(Article, article_id, options=[joinedload(Article.source)])
        assert article is not None
        canonical = normalize_url(data.canonical_url or final_url)
        if len(canonical) > MAX_URL_CHARS:  # keep the URL we know rather than fail on the column size
            canonical = article.canonical_url
        if canonical != article.canonical_url:
            other = session.scalar(select(Article).where(Article.canonical_url == canonical))
            if other is not None and other.id != article.id:
                article.status = "duplicate"
                article.duplicate_of_id = other.id
                other.last_seen_at = utcnow()
                return ProcessOutcome(article_id, "duplicate")
            article.canonical_url = canonical
        was_ready = article.status == "ready"
        changed = _apply(article, data)
        article.status = "ready"
        article.error = None
        article.fetched_at = utcnow()
        if changed:
            article.changed_at = article.fetched_at
        feeds = (
            with_story_feeds(session, rt.config, article, affected_feeds(rt.config, article))
            if changed
            else []
        )
        return ProcessOutcome(article_id, "ready", changed=changed, feeds=feeds, share=not was_ready)


def _touch_fetched(rt: Runtime, article_id: int, result: FetchResult, source_id: int) -> None:
    """A 304 for an article: nothing to parse; note that we asked."""
    with rt.session() as session:
        store_fetch_state(session, result.url, source_id, result.etag, result.last_modified, None, 304)
        article = session.get(Article, article_id)
        if article is not None:
            article.fetched_at = utcnow()


def _hinted_document(url: str, hints: dict[str, str]) -> str | None:
    """The feed's own full story as a document, if it carried one (see :func:`_feed_content`)."""
    return _feed_content(Discovered.from_hints(url, hints))


def _with_hints(data: NormalizedArticle, hints: dict[str, str]) -> NormalizedArticle:
    """``data`` with the fields its page lacked taken from the feed or sitemap entry."""
    if not hints:
        return data
    found = Discovered.from_hints(data.url, hints)
    changes: dict[str, object] = {}
    if not data.title and found.title:
        changes["title"] = found.title
    if data.published is None and found.published is not None:
        changes["published"] = found.published
    if data.updated is None and found.modified not in (None, data.published):
        changes["updated"] = found.modified
    if not data.summary and found.summary:
        changes["summary"] = found.summary
    return dataclasses.replace(data, **changes) if changes else data  # type: ignore[arg-type]


def _settle(rt: Runtime, article_id: int, status: str, exc: BaseException) -> None:
    """Give a not-ready article its final ``status`` and the reason (a ready one keeps its state)."""
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is not None and article.status != "ready":
            article.status = status
            article.error = short_error(exc)


def mark_article_skipped(rt: Runtime, article_id: int, exc: BaseException) -> None:
    """Record that an article is not fetched at all (robots.txt), with the reason."""
    _settle(rt, article_id, "skipped", exc)


def _uncount_attempt(rt: Runtime, article_id: int) -> None:
    """Take back the attempt a run counted before it found its host busy."""
    with rt.session() as session:
        done = update(Article).where(Article.id == article_id, Article.attempts > 0)
        session.execute(done.values(attempts=Article.attempts - 1))


def note_failed_attempt(rt: Runtime, article_id: int, exc: BaseException) -> bool:
    """Record a transient failure on a pending article; after :data:`FETCH_ATTEMPTS` mark it failed.

    Returns whether it is failed now. The count is the article's own (in the database), so neither a
    task re-sent for its host's turn nor one the sweep re-enqueued starts it again; and the reason
    shows while the article is still pending, not only once it failed.
    """
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is None or article.status != "pending":
            return False
        if article.attempts >= FETCH_ATTEMPTS:
            article.status = "failed"
            article.error = f"gave up after {article.attempts} attempts: {short_error(exc)}"[:MAX_ERROR_CHARS]
            return True
        reason = f"attempt {article.attempts} of {FETCH_ATTEMPTS} failed: {short_error(exc)}"
        article.error = reason[:MAX_ERROR_CHARS]
        return False


def mark_article_failed(rt: Runtime, article_id: int, exc: BaseException) -> None:
    """Record a final failure on an article (used when retries are exhausted too)."""
    _settle(rt, article_id, "failed", exc)


def retract_article(rt: Runtime, article_id: int) -> list[str]:
    """Mark an article :data:`RETRACTED`; return the feeds to re-render so it leaves them.

    For the re-crawl that finds the original answering 404/410, or an operator withdrawing a story.
    """
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise LookupError(f"no article with id {article_id}")
        article.status = RETRACTED
        article.changed_at = utcnow()
        return with_story_feeds(session, rt.config, article, affected_feeds(rt.config, article))
