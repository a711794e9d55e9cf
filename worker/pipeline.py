"""The pipeline stages as plain functions: crawl → process (fetch, normalize, store) → render → share.

Each stage opens its own transaction, commits, and returns the ids the next stage needs; the Celery
tasks in :mod:`worker.tasks` enqueue those ids only after the stage returned, i.e. after commit.
Stages are idempotent: running one twice for the same id changes nothing the second time.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus, urldefrag, urlsplit, urlunsplit

from bs4 import BeautifulSoup
from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, contains_eager, defer, joinedload

from config import Config, FeedConfig
from config.model import SourceConfig
from feeds.build import (
    EPOCH,
    FeedItem,
    FeedMeta,
    RelatedVersion,
    RenderedFeed,
    render_all,
    tag_authority,
    tag_uri,
)
from feeds.build import render_feed as build_feed
from worker import logs, metrics
from worker.errors import Disallowed, FetchError, HostBusy, NormalizeError, Retryable
from worker.fetch import Discovered, FetchResult
from worker.fetch.sources import Document, crawl
from worker.normalize import Article as NormalizedArticle
from worker.normalize import normalize
from worker.runtime import Runtime
from worker.store.models import (
    Article,
    ArticleTerm,
    FeedRender,
    FetchState,
    Source,
    Story,
    term_key,
    utcnow,
)

log = logging.getLogger(__name__)

PUSH_SOURCE = "api"
PUSHED_HINT = "pushed"
MAX_ERROR_CHARS = 2000
# A page that fails transiently (timeouts, 5xx) this many times is failed for good, with the reason:
# one try and the process task's five retries (its backoff spaces them 2-32 s apart).
FETCH_ATTEMPTS = 6
# Column sizes of ``articles`` (PostgreSQL enforces them; a longer value would fail the whole stage).
MAX_URL_CHARS = 2048
MAX_CATEGORY_CHARS = 255


def sync_sources(session: Session, config: Config) -> dict[str, int]:
    """Make the ``sources`` (and ``endpoints``) tables match the config by name; return source ``{name: id}``.

    Sources removed from the config stay in the table (their articles remain in the archive).
    """
    existing = {s.name: s for s in session.scalars(select(Source))}
    wanted = [(s.name, s.kind, s.url) for s in config.sources] + [(PUSH_SOURCE, "push", "")]
    for name, kind, url in wanted:
        row = existing.get(name)
        if row is None:
            row = Source(name=name, kind=kind, url=url)
            session.add(row)
            existing[name] = row
        else:
            row.kind, row.url = kind, url
    session.flush()
    from worker.store.endpoints import sync_endpoints

    # Endpoints get their row (and so their "added" time) as early as sources do.
    sync_endpoints(session, config)
    return {name: row.id for name, row in existing.items()}


# Query keys that only say where a click came from: the same story with any of them is the same URL.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "wickedid",
        "rb_clickid",
        "s_cid",
        "ncid",
        "spm",
        "__s",
        "ref_src",
        "ref_url",
    }
)


def _tracking(part: str) -> bool:
    key = unquote_plus(part.split("=", 1)[0]).strip().lower()
    return key.startswith(("utm_", "pk_", "hsa_")) or key in TRACKING_PARAMS


def normalize_url(url: str) -> str:
    """The form of a URL we key articles by: fragment and tracking parameters dropped, space stripped.

    Tracking parameters are :data:`TRACKING_PARAMS` plus every ``utm_*``, ``pk_*`` and ``hsa_*``
    key; the other parameters keep their order and spelling, so nothing else about the URL changes.
    """
    url = urldefrag(url.strip())[0]
    scheme, netloc, path, query, _ = urlsplit(url)
    if not query:
        return url
    kept = [part for part in query.split("&") if part and not _tracking(part)]
    return urlunsplit((scheme, netloc, path, "&".join(kept), ""))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


# ---------------------------------------------------------------- crawl

# A failing source is crawled again after schedule * 2**(errors-1), minus half an interval so that
# the beat run meant to retry it is not lost to jitter; never later than this.
MAX_BACKOFF_SECONDS = 24 * 3600.0


def backoff_delay(schedule: float, consecutive_errors: int, retry_after: float | None = None) -> float:
    """Seconds a source that failed ``consecutive_errors`` times in a row waits before its next crawl.

    One failure waits half an interval (the next beat run crawls it); each further failure doubles
    the wait, so beat runs are skipped: 1.5, 3.5, 7.5... intervals, up to a day. A ``Retry-After``
    the site sent is honoured when it asks for longer.
    """
    if consecutive_errors <= 0:
        return 0.0
    exponent = min(consecutive_errors - 1, 30)
    delay = min(schedule * 2**exponent - schedule / 2, max(MAX_BACKOFF_SECONDS, schedule))
    return max(delay, retry_after or 0.0)


@dataclass
class CrawlReport:
    """What one crawl of a source did: the article ids to process and, if it failed, why.

    ``deferred`` means it did not run because the source is backing off, ``paused`` because an
    operator paused it (``syndicate source pause``); ``requests``,
    ``not_modified`` and ``bytes`` are the crawl's own requests (not the articles').
    """

    source: str
    ids: list[int] = field(default_factory=list)
    # Of ``ids``, the pending articles this crawl listed again (not new, not changed): their first
    # message may still be on its way (see :func:`crawl_source`).
    relisted: list[int] = field(default_factory=list)
    error: str | None = None
    deferred: datetime | None = None
    paused: bool = False
    new: int = 0
    refreshed: int = 0
    skipped: int = 0
    requests: int = 0
    not_modified: int = 0
    bytes: int = 0

    @property
    def failed(self) -> bool:
        """Whether the crawl failed (the error is on the source row too)."""
        return self.error is not None


class DatabaseCrawlState:
    """The :class:`~worker.fetch.sources.CrawlState` of one source, read from ``fetch_states``.

    Reads come from rows loaded once per crawl; what the crawl learns is written by :meth:`save`
    in the same transaction that stores the articles, so an interrupted crawl remembers nothing
    it did not act on.
    """

    def __init__(self, rt: Runtime, source_id: int) -> None:
        """Load every stored validator of the source ``source_id``."""
        self.rt = rt
        self.source_id = source_id
        with rt.session() as session:
            rows = session.scalars(select(FetchState).where(FetchState.source_id == source_id))
            self.rows = {r.url: (r.etag, r.last_modified, r.lastmod) for r in rows}
        self.learnt: dict[str, tuple[str | None, str | None, datetime | None, int]] = {}

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """The ETag and Last-Modified last seen for ``url``."""
        etag, last_modified, _ = self.rows.get(url, (None, None, None))
        return etag, last_modified

    def lastmod(self, url: str) -> datetime | None:
        """The ``lastmod`` last announced for ``url``."""
        return self.rows.get(url, (None, None, None))[2]

    def known(self, urls: Sequence[str]) -> set[str]:
        """Which of these article URLs are stored (by URL or canonical URL)."""
        wanted = [normalize_url(u) for u in urls]
        with self.rt.session() as session:
            rows = session.execute(
                select(Article.url, Article.canonical_url).where(
                    Article.url.in_(wanted) | Article.canonical_url.in_(wanted)
                )
            ).all()
        stored = {u for row in rows for u in row}
        return {u for u in urls if normalize_url(u) in stored}

    def fetched(self, url: str, result: FetchResult, lastmod: datetime | None = None) -> None:
        """Remember the answer for :meth:`save`."""
        previous = self.rows.get(url, (None, None, None))[2]
        entry = (result.etag, result.last_modified, lastmod or previous)
        self.rows[url] = entry
        self.learnt[url] = (*entry, result.status)

    def save(self, session: Session) -> None:
        """Write what this crawl learnt."""
        for url, (etag, last_modified, lastmod, status) in self.learnt.items():
            if len(url) <= MAX_URL_CHARS:
                _store_fetch_state(session, url, self.source_id, etag, last_modified, lastmod, status)
        self.learnt.clear()


def _store_fetch_state(
    session: Session,
    url: str,
    source_id: int | None,
    etag: str | None,
    last_modified: str | None,
    lastmod: datetime | None,
    status: int | None,
) -> None:
    row = session.scalar(select(FetchState).where(FetchState.url == url))
    if row is None:
        row = FetchState(url=url, source_id=source_id)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another worker stored it first: update theirs
            row = session.scalar(select(FetchState).where(FetchState.url == url))
            if row is None:
                return
    if lastmod is not None:
        row.lastmod = lastmod
    if status is None:
        # Only the source's new lastmod, no fetch: the validators stay, so the refetch is conditional.
        return
    if status != 304 or etag or last_modified:
        row.etag, row.last_modified = etag, last_modified
    row.status = status
    row.fetched_at = utcnow()


def crawl_source(
    rt: Runtime,
    source_id: int,
    *,
    force: bool = False,
    uncovered: Callable[[list[int]], list[int]] | None = None,
) -> list[int]:
    """Discover article URLs of a source; return the ids of articles that need processing.

    New URLs become ``pending`` articles (on a first crawl at most ``backfill`` of them, the rest
    ``skipped``); stored ones are touched (``last_seen_at``) and processed again only when the
    source announces a newer ``lastmod`` (or, for a ``page`` source, every time: conditionally).
    A fetch error is recorded on the source, which then backs off (see :func:`backoff_delay`);
    :class:`~worker.errors.HostBusy` is raised after saving the progress so far, for a reschedule.
    ``force`` crawls even a source that is backing off (``syndicate crawl``).

    Pending articles are returned too, whether or not this crawl listed them. ``uncovered`` (the
    worker passes the work markers' view) keeps of those only the ones no live message covers: one
    waiting for its host's turn or running elsewhere would otherwise be fetched twice. The markers
    are read after the database, so an article that finished in between looks uncovered: those are
    read again and kept only while still pending (a task commits before its marker goes).
    """
    report = run_crawl(rt, source_id, force=force)
    metrics.count_crawl(report)
    if uncovered is None or not report.relisted:
        return report.ids
    free = set(uncovered(report.relisted))
    if free:
        with rt.session() as session:
            free = set(
                session.scalars(select(Article.id).where(Article.id.in_(free), Article.status == "pending"))
            )
    relisted = set(report.relisted)
    return [i for i in report.ids if i not in relisted or i in free]


def run_crawl(rt: Runtime, source_id: int, *, force: bool = False) -> CrawlReport:
    """:func:`crawl_source` with the whole :class:`CrawlReport`."""
    with rt.session() as session:
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"no source with id {source_id}")
        name, next_crawl_at, cursor = source.name, source.next_crawl_at, source.cursor
        paused = source.paused_at is not None
        first = source.last_success_at is None
        stored_count = session.scalar(
            select(func.count()).select_from(Article).where(Article.source_id == source_id)
        )
    report = CrawlReport(source=name)
    try:
        source_config = rt.config.source(name)
    except KeyError:
        if name != PUSH_SOURCE:
            log.warning("source %s is no longer configured; skipping crawl", name)
        return report
    if source_config.kind == "push":
        return report
    if paused:  # an operator's `syndicate source pause`: beat's runs and forced crawls alike fetch nothing
        log.info("source %s is paused; skipping this crawl", name)
        report.paused = True
        return report
    now = utcnow()
    if not force and next_crawl_at is not None and now < next_crawl_at:
        log.info("source %s is backing off until %s; skipping this run", name, next_crawl_at.isoformat())
        report.deferred = next_crawl_at
        return report

    state = DatabaseCrawlState(rt, source_id)
    resume = [Document.from_json(d) for d in (cursor or {}).get("documents", [])]
    limit = max(source_config.backfill - int(stored_count or 0), 0) if first else None
    try:
        result = crawl(source_config, rt.fetcher, state, first=first, limit=limit, resume=resume or None)
    except HostBusy:
        raise  # nothing fetched yet for this document; the task reschedules the crawl
    except FetchError as exc:
        report.error = _short(exc)
        _record_crawl_failure(rt, source_id, source_config.schedule, exc)
        log.warning("crawl of %s failed: %s", name, exc)
        return report
    report.requests, report.not_modified, report.bytes = result.requests, result.not_modified, result.bytes

    with rt.session() as session:
        source = session.get(Source, source_id)
        assert source is not None
        ids = _store_found(
            session, source, source_config, result.found, state, first=first, limit=limit, report=report
        )
        state.save(session)
        # Pending articles are processed whether or not this crawl listed them (a 304 lists nothing);
        # those a concurrent crawl stored meanwhile are that crawl's to enqueue.
        pending = list(
            session.scalars(
                select(Article.id)
                .where(
                    Article.source_id == source_id, Article.status == "pending", Article.last_seen_at < now
                )
                .order_by(Article.id)
                .limit(500)
            )
        )
        report.relisted += [i for i in pending if i not in ids]
        ids = list(dict.fromkeys([*ids, *pending]))
        held = list((source.cursor or {}).get("ids", []))
        if result.busy is not None:
            # Resume here next time, and process what this part found once the crawl completes. Only
            # what it found new or changed: the pending articles it listed again are looked at anew
            # then (they may have been processed meanwhile; held here, they were fetched twice).
            relisted = set(report.relisted)
            found = [i for i in ids if i not in relisted]
            source.cursor = {"documents": [d.to_json() for d in result.remaining], "ids": held + found}
        else:
            source.cursor = None
            ids = list(dict.fromkeys(held + ids))
            source.last_crawl_at = now
            source.last_success_at = now
            source.last_error = None
            source.consecutive_errors = 0
            source.failing_since = None
            source.next_crawl_at = None
            source.crawl_count += 1
    if result.busy is not None:
        raise result.busy
    report.ids = ids
    if first and report.new:
        _log_first_crawl(rt.config, name, report.new)
    return report


def _log_first_crawl(config: Config, name: str, found: int) -> None:
    """Say out loud that a source's first crawl is its back catalogue, and which endpoints leave it alone."""
    held = [e.name for e in config.endpoints if e.enabled and not e.back_catalogue]
    if not held:
        return
    log.info(
        "source %s: first crawl found %d new stories: the back catalogue, not shared to %s (unless "
        "published within the endpoint's max_age); `syndicate share send` shares one on purpose",
        name,
        found,
        ", ".join(held),
    )


def _record_crawl_failure(rt: Runtime, source_id: int, schedule: float, exc: FetchError) -> None:
    now = utcnow()
    with rt.session() as session:
        source = session.get(Source, source_id)
        assert source is not None
        source.last_crawl_at = now
        source.last_error = _short(exc)
        source.error_count += 1
        source.consecutive_errors += 1
        source.failing_since = source.failing_since or now
        wait = backoff_delay(schedule, source.consecutive_errors, getattr(exc, "retry_after", None))
        source.next_crawl_at = now + timedelta(seconds=wait)
        source.cursor = None


def _hints(found: Discovered) -> dict[str, str] | None:
    """What a feed or sitemap said about a story, kept for the fields its page lacks."""
    hints = {
        "title": found.title,
        "summary": found.summary,
        "content_html": found.html,
        "published": found.published.isoformat() if found.published else None,
        "modified": found.modified.isoformat() if found.modified else None,
    }
    kept = {k: v for k, v in hints.items() if v}
    return kept or None


def _store_found(
    session: Session,
    source: Source,
    config: SourceConfig,
    found: Sequence[Discovered],
    state: DatabaseCrawlState,
    *,
    first: bool,
    limit: int | None,
    report: CrawlReport,
) -> list[int]:
    """Store what a crawl found; return the ids to process (new, and changed per ``lastmod``)."""
    name, source_id = source.name, source.id
    hints = {normalize_url(d.url): d for d in reversed(found)}
    urls = list(dict.fromkeys(normalize_url(d.url) for d in found))
    too_long = [u for u in urls if len(u) > MAX_URL_CHARS]
    if too_long:
        log.warning("source %s: skipped %d link(s) over %d chars", name, len(too_long), MAX_URL_CHARS)
        urls = [u for u in urls if len(u) <= MAX_URL_CHARS]
    known = {
        a.canonical_url: a
        for a in session.scalars(
            select(Article).where((Article.canonical_url.in_(urls)) | (Article.url.in_(urls)))
        )
    }
    known.update({a.url: a for a in list(known.values())})
    lastmods = {r.url: r.lastmod for r in session.scalars(select(FetchState).where(FetchState.url.in_(urls)))}
    now = utcnow()
    to_process: list[int] = []
    taken = 0
    for url in urls:
        found_item = hints[url]
        article = known.get(url)
        if article is None:
            article = Article(
                source_id=source_id, url=url, canonical_url=url, status="pending", backfill=first
            )
            article.hints = _hints(found_item)
            over = first and limit is not None and taken >= limit
            if over:
                # Remembered, so later crawls do not take the back catalogue as news.
                article.status = "skipped"
                article.error = f"beyond the first crawl's backfill of {config.backfill} articles"
            try:
                with session.begin_nested():
                    session.add(article)
            except IntegrityError:  # a concurrent crawl (beat + `syndicate crawl`) stored it first
                continue
            known[url] = article
            if found_item.modified is not None:
                _store_fetch_state(session, url, source_id, None, None, found_item.modified, None)
            if over:
                report.skipped += 1
                continue
            taken += 1
            report.new += 1
            to_process.append(article.id)
            continue
        article.last_seen_at = now
        if article.status == "pending":
            to_process.append(article.id)
            report.relisted.append(article.id)
        elif article.status == "ready" and _changed(config, found_item, lastmods.get(url)):
            article.hints = _hints(found_item) or article.hints
            if found_item.modified is not None:
                _store_fetch_state(session, url, source_id, None, None, found_item.modified, None)
            report.refreshed += 1
            to_process.append(article.id)
    return to_process


def _changed(config: SourceConfig, found: Discovered, stored_lastmod: datetime | None) -> bool:
    """Whether a stored, ready article must be fetched again."""
    if config.kind == "page":
        return True  # one URL watched for changes: a conditional GET, mostly a 304
    if found.modified is None:
        return False
    return stored_lastmod is None or found.modified > stored_lastmod


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
    return synthesize_html(
        PushedArticle(url=found.url, title=found.title, content_html=found.html, published=found.published)
    )


# ---------------------------------------------------------------- process


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
            _store_fetch_state(
                session, url, source_id, result.etag, result.last_modified, None, result.status
            )
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
            _with_story_feeds(session, rt.config, article, affected_feeds(rt.config, article))
            if changed
            else []
        )
        return ProcessOutcome(article_id, "ready", changed=changed, feeds=feeds, share=not was_ready)


def _touch_fetched(rt: Runtime, article_id: int, result: FetchResult, source_id: int) -> None:
    """A 304 for an article: nothing to parse; note that we asked."""
    with rt.session() as session:
        _store_fetch_state(session, result.url, source_id, result.etag, result.last_modified, None, 304)
        article = session.get(Article, article_id)
        if article is not None:
            article.fetched_at = utcnow()


def _hint_time(hints: dict[str, str], key: str) -> datetime | None:
    value = hints.get(key)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _hinted_document(url: str, hints: dict[str, str]) -> str | None:
    """The feed's own full story as a document, if it carried one (see :func:`_feed_content`)."""
    return _feed_content(
        Discovered(
            url=url,
            title=hints.get("title"),
            published=_hint_time(hints, "published"),
            html=hints.get("content_html"),
        )
    )


def _with_hints(data: NormalizedArticle, hints: dict[str, str]) -> NormalizedArticle:
    """``data`` with the fields its page lacked taken from the feed or sitemap entry."""
    if not hints:
        return data
    changes: dict[str, object] = {}
    if not data.title and hints.get("title"):
        changes["title"] = hints["title"]
    if data.published is None and _hint_time(hints, "published") is not None:
        changes["published"] = _hint_time(hints, "published")
    if data.updated is None and _hint_time(hints, "modified") not in (None, data.published):
        changes["updated"] = _hint_time(hints, "modified")
    if not data.summary and hints.get("summary"):
        changes["summary"] = hints["summary"]
    return dataclasses.replace(data, **changes) if changes else data  # type: ignore[arg-type]


def mark_article_skipped(rt: Runtime, article_id: int, exc: BaseException) -> None:
    """Record that an article is not fetched at all (robots.txt), with the reason."""
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is not None and article.status != "ready":
            article.status = "skipped"
            article.error = _short(exc)


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
            article.error = f"gave up after {article.attempts} attempts: {_short(exc)}"[:MAX_ERROR_CHARS]
            return True
        reason = f"attempt {article.attempts} of {FETCH_ATTEMPTS} failed: {_short(exc)}"
        article.error = reason[:MAX_ERROR_CHARS]
        return False


def mark_article_failed(rt: Runtime, article_id: int, exc: BaseException) -> None:
    """Record a final failure on an article (used when retries are exhausted too)."""
    with rt.session() as session:
        article = session.get(Article, article_id)
        if article is not None and article.status != "ready":
            article.status = "failed"
            article.error = _short(exc)


# ---------------------------------------------------------------- feeds

# An article whose original is gone (a re-crawl answered 404/410) or was withdrawn: it leaves every
# feed at the next render but keeps its row, so it is not re-created and keeps its place in the
# archive numbering (its archive page shows a hole rather than every later page shifting).
RETRACTED = "retracted"
FEED_STATUSES = ("ready", RETRACTED)
STYLESHEET_PATH = "/feeds.xsl"
OPML_PATH = "/feeds.opml"


def _keys(values: Iterable[str]) -> set[str]:
    return {term_key(v) for v in values}


def _matches(feed: FeedConfig, source_name: str, category: str | None, tags: Iterable[str] | None) -> bool:
    """The Python twin of :func:`_feed_where` (for one article in hand)."""
    if feed.sources and source_name not in feed.sources:
        return False
    if feed.categories and term_key(category or "") not in _keys(feed.categories):
        return False
    return not (feed.tags and not (_keys(t for t in tags or [] if t) & _keys(feed.tags)))


def _feed_where(feed: FeedConfig, article: Any = Article) -> list[Any]:
    """SQL conditions selecting the articles of ``feed`` by source, category and tag (not status).

    Categories and tags are matched through ``article_terms`` (case-folded like :func:`_matches`), so
    a filtered feed reads only its own rows, as the unfiltered one does. ``article`` is the entity the
    conditions are on (an alias of :class:`Article` for a story's versions).
    """
    where: list[Any] = []
    if feed.sources:
        where.append(
            article.source_id.in_(select(Source.id).where(Source.name.in_(feed.sources)).scalar_subquery())
        )
    for kind, values in (("category", feed.categories), ("tag", feed.tags)):
        if values:
            where.append(
                article.terms.any(and_(ArticleTerm.kind == kind, ArticleTerm.term.in_(sorted(_keys(values)))))
            )
    return where


# ---------------------------------------------------------------- stories in feeds

# The role of a story's version that feeds show and endpoints post (the others are "version").
STORY_MAIN = "main"
_Version = aliased(Article, name="story_version")


def merged_feed(feed: FeedConfig) -> bool:
    """Whether ``feed`` lists stories, one entry each, rather than articles.

    Every feed but a per-source one is merged: ``all``, category and tag feeds, and feeds over
    several sources. A per-source feed (``sources`` naming exactly one source) stays one entry per
    article of that source: it is that partner's own feed.
    """
    return len(feed.sources) != 1


def _entry_where(feed: FeedConfig) -> list[Any]:
    """SQL conditions selecting the rows that stand for ``feed``'s entries (status aside).

    In a merged feed: a story's main version, when any ready version of the story (itself included)
    matches the feed's filters, so a story some partner filed under the feed's category is in the
    feed whichever version is its main one, and the entry shows that main version; and an article
    not (yet) in a story, by its own fields. Otherwise the articles the filters select.
    """
    if not merged_feed(feed):
        return _feed_where(feed)
    alone = and_(Article.story_id.is_(None), *_feed_where(feed))
    main = Article.story_role == STORY_MAIN
    filters = _feed_where(feed, _Version)
    if filters:
        versions = exists().where(_Version.story_id == Article.story_id, _Version.status == "ready", *filters)
        main = and_(main, Article.story_id.is_not(None), versions)
    return [or_(alone, main)]


def _entry_query(feed: FeedConfig) -> Select[Article]:
    return (
        select(Article)
        .join(Source)
        .options(contains_eager(Article.source), defer(Article.raw_html), defer(Article.text))
        .where(Article.status == "ready", *_entry_where(feed))
    )


def _anchored_entries(session: Session, feed: FeedConfig, ids: Sequence[int]) -> list[int]:
    """The entries (article ids, as :func:`_entry_where` picks them) that ``ids`` of the archive hold
    (some may not be ready: read them with :func:`_ready_query`).

    ``ids`` are part of :func:`archive_ids`. In a merged feed a story is held where its first
    version in the feed is (its lowest id among the feed's ready and retracted articles): a version
    joining later, or a new main version, moves nothing, so archive pages keep their place and only
    the story's entry changes. It is shown there while a ready version matches the feed's filters
    (a retracted one keeps the place only). An article without a story is held where it is.
    """
    if not ids:
        return []
    if not merged_feed(feed):
        return list(ids)  # the caller reads the ready ones
    held = set(ids)
    rows = session.execute(select(Article.id, Article.story_id, Article.status).where(Article.id.in_(ids)))
    out: list[int] = []
    story_ids: set[int] = set()
    for article_id, story_id, status in rows:
        if story_id is None:
            if status == "ready":
                out.append(article_id)
        else:
            story_ids.add(story_id)
    stories: dict[int, list[Any]] = {}
    for version in _story_versions(session, story_ids):
        assert version.story_id is not None  # selected by it
        stories.setdefault(version.story_id, []).append(version)
    for members in stories.values():
        in_feed = [v for v in members if v.status in FEED_STATUSES and _version_in_feed(feed, v)]
        if not in_feed or min(v.id for v in in_feed) not in held:
            continue  # held by another page
        if any(v.status == "ready" for v in in_feed):
            out += [v.id for v in members if v.story_role == STORY_MAIN and v.status == "ready"]
    return out


def _story_versions(session: Session, story_ids: Iterable[int]) -> list[Any]:
    """Every article of these stories, whatever its status: the columns feeds need, no bodies.

    Selected by ``story_id`` alone, so the database reads them through ``ix_articles_story_id``
    (SQLite, without statistics, preferred the status index for ``story_id IN (...) AND status``
    and read every ready row: 25 ms at 20,000 articles); callers look at the status. Rows, not
    ORM objects: a render reads a few hundred of them.
    """
    wanted = sorted(set(story_ids))
    if not wanted:
        return []
    query = (
        select(
            Article.id,
            Article.story_id,
            Article.story_role,
            Article.status,
            Article.canonical_url,
            Article.title,
            Article.language,
            Article.published,
            Article.updated,
            Article.changed_at,
            Article.first_seen_at,
            Article.category,
            Article.tags,
            Source.name.label("source_name"),
        )
        .join(Source)
        .where(Article.story_id.in_(wanted))
    )
    return list(session.execute(query))


def _version_in_feed(feed: FeedConfig, version: Any) -> bool:
    """:func:`article_in_feed` for a row of :func:`_story_versions`."""
    return _matches(feed, version.source_name, version.category, version.tags)


def _version_updated(article: Any, now: datetime) -> datetime | None:
    """An article's last change as its entry says it (see :func:`_feed_item`)."""
    seen = article.first_seen_at
    return _not_after(article.updated or article.changed_at, article.changed_at or seen, now)


def _as_stories(
    session: Session,
    entries: Sequence[tuple[Article, FeedItem]],
    config: Config | None,
    authority: str,
    now: datetime,
) -> list[FeedItem]:
    """Each main version's item as its story's entry; articles without a story stay as they are.

    The entry keeps the main version's title, content, link, dates, image, authors and source, and
    gets: the story's id (``tag_uri(authority, entry_day, entry_key)``: for a story founded by an
    article, that article's own entry id, so it never changes when versions join or the main
    version changes); the other ready versions as :class:`RelatedVersion`s, oldest first; and as
    ``updated`` the latest of the versions' changes and, once it has other versions, the story's
    ``updated_at`` (a join or a new main version moves it). A story with one version thus renders
    as its article did, ``_syndicate.story_id`` in JSON Feed aside.
    """
    story_ids = {article.story_id for article, _ in entries if article.story_id is not None}
    if not story_ids:
        return [item for _, item in entries]
    columns = (Story.id, Story.entry_key, Story.entry_day, Story.created_at, Story.updated_at)
    stories = {row.id: row for row in session.execute(select(*columns).where(Story.id.in_(story_ids)))}
    versions: dict[int, list[Any]] = {}
    ready = [v for v in _story_versions(session, story_ids) if v.status == "ready"]
    for version in sorted(ready, key=lambda v: (v.published or v.first_seen_at, v.id)):
        assert version.story_id is not None  # selected by it
        versions.setdefault(version.story_id, []).append(version)
    out: list[FeedItem] = []
    for article, item in entries:
        story = stories.get(article.story_id) if article.story_id is not None else None
        if story is None:
            out.append(item)
            continue
        others = [v for v in versions.get(story.id, []) if v.id != article.id]
        changes = [item.updated, *(_version_updated(v, now) for v in others)]
        if others:
            changes.append(_not_after(story.updated_at, story.created_at, now))
        known = [c for c in changes if c is not None]
        related = tuple(
            RelatedVersion(
                url=v.canonical_url,
                title=v.title or v.canonical_url,
                source_name=_source_name(config, v.source_name),
                language=v.language,
            )
            for v in others
        )
        out.append(
            dataclasses.replace(
                item,
                id=tag_uri(authority, story.entry_day, story.entry_key),
                updated=max(known) if known else None,
                related=related,
                language=article.language,
                story_id=story.id,
            )
        )
    return out


def _source_name(config: Config | None, name: str) -> str:
    source_config = _source_config(config, name)
    return (source_config.title or source_config.name) if source_config else name


def story_feeds(session: Session, config: Config, story_id: int) -> list[str]:
    """Names of the merged feeds whose entries show story ``story_id`` (re-render these after it
    changes: a version joined or left, the main version changed, a version was edited).

    A merged feed shows the story when any of its versions matches the feed's filters (retracted
    ones count, so the feed a version leaves is named too). Per-source feeds list articles, not
    stories: a story's change leaves their entries as they were (an article's own change names
    them through :func:`affected_feeds`).
    """
    versions = [v for v in _story_versions(session, [story_id]) if v.status in FEED_STATUSES]
    return [
        feed.name
        for feed in config.feeds
        if merged_feed(feed) and any(_version_in_feed(feed, version) for version in versions)
    ]


def feeds_of_story(rt: Runtime, story_id: int) -> list[str]:
    """:func:`story_feeds` in a session of its own (for the story assignment, the CLI and the API)."""
    with rt.session() as session:
        return story_feeds(session, rt.config, story_id)


def _with_story_feeds(session: Session, config: Config, article: Article, feeds: list[str]) -> list[str]:
    """``feeds`` and the merged feeds of ``article``'s story: its entry there lists ``article`` too."""
    if article.story_id is None:
        return feeds
    return list(dict.fromkeys([*feeds, *story_feeds(session, config, article.story_id)]))


def article_in_feed(feed: FeedConfig, article: Article) -> bool:
    """Whether ``article`` belongs in ``feed`` by the feed's source, category and tag filters.

    Status is not looked at: a retracted article still "belongs", so :func:`affected_feeds` names
    the feeds it has to leave.
    """
    return _matches(feed, article.source.name, article.category, article.tags)


def affected_feeds(config: Config, article: Article) -> list[str]:
    """Names of the configured feeds ``article`` belongs to (re-render these after it changes)."""
    return [f.name for f in config.feeds if article_in_feed(f, article)]


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
        return _with_story_feeds(session, rt.config, article, affected_feeds(rt.config, article))


def entry_id(authority: str, article: Article) -> str:
    """The article's feed entry id: a tag URI from facts that never change once stored.

    ``tag:<public host>,<first_seen_at date>:articles/<id>`` (RFC 4151). The URL is not part of it,
    so a changed canonical link, an edit or a re-crawl keep the entry; only a change of the public
    host (the tagging authority) would change every id.
    """
    return tag_uri(authority, article.first_seen_at.astimezone(UTC).date(), f"articles/{article.id}")


def _not_after(value: datetime | None, fallback: datetime, now: datetime) -> datetime | None:
    """``value``, or when it lies after ``now`` the stored ``fallback`` (so the bytes stay stable)."""
    if value is None or value <= now:
        return value
    return min(fallback, now)


def _feed_item(article: Article, config: Config | None, authority: str, now: datetime) -> FeedItem:
    seen = article.first_seen_at
    published = _not_after(article.published, seen, now) or min(seen, now)
    updated = _not_after(article.updated or article.changed_at, article.changed_at or seen, now)
    source_config = _source_config(config, article.source.name)
    categories = tuple(dict.fromkeys([c for c in [article.category, *(article.tags or [])] if c]))
    return FeedItem(
        id=entry_id(authority, article),
        url=article.canonical_url,
        title=article.title or article.canonical_url,
        summary=article.summary or "",
        content_html=article.content_html or "",
        published=published,
        updated=updated,
        authors=tuple(article.authors or ()),
        categories=categories,
        image=article.image,
        source_name=(source_config.title or source_config.name) if source_config else None,
        source_url=source_config.url if source_config else None,
        source_id=source_config.url if source_config else None,
    )


def _source_config(config: Config | None, name: str) -> SourceConfig | None:
    if config is None:
        return None
    return next((s for s in config.sources if s.name == name), None)


def _item_order(pair: tuple[int, FeedItem]) -> tuple[datetime, int]:
    """Newest first when sorted in reverse: by (clamped) publication date, then by id."""
    return (pair[1].published or EPOCH, pair[0])


def feed_items(
    session: Session,
    feed: FeedConfig,
    *,
    config: Config | None = None,
    authority: str = "localhost",
    now: datetime | None = None,
    include_ids: Iterable[int] = (),
) -> list[FeedItem]:
    """The newest entries of ``feed`` (at most ``feed.limit``), as feed items, newest first.

    Failed, pending, duplicate and :data:`RETRACTED` articles are left out. Dates after ``now`` are
    replaced by when we first saw the article, so a story dated 2099 neither stays on top nor pins
    the feed's date. ``include_ids`` are archive ids (:func:`archive_ids`) whose entries must be
    present whatever their date (the ones no archive page holds yet). With ``config``, items carry
    their source's display name.

    A merged feed (:func:`merged_feed`) has one entry per story (:func:`_entry_where` says which
    stories, :func:`_as_stories` what the entry holds), ordered by its main version's date: the date
    the entry shows, read through the same index as an article's (``ix_articles_dated``), so the
    newest-first query still stops after ``limit`` rows. (The story's ``first_published`` would keep
    a story in place when its main version changes, but it is another table's column: ordering by
    it would sort every story of the archive on each render, and the entry would show one date while
    sitting at another.)
    """
    now = now or utcnow()
    dated = func.coalesce(Article.published, Article.first_seen_at)
    # Future-dated articles (few) are fetched apart and placed by their clamped date.
    future = _entry_query(feed).where(Article.published > now, dated > now)  # dated: the index
    current = (
        _entry_query(feed)
        .where((Article.published.is_(None)) | (Article.published <= now))
        .order_by(dated.desc(), Article.id.desc())
    )
    picked: dict[int, tuple[Article, FeedItem]] = {}

    def take(rows: Iterable[Article], limit: int | None) -> None:
        count = 0
        for article in rows:
            if article.id in picked:
                continue
            # Stored bodies are the normalizer's nh3 output (crawled and pushed alike): the
            # feed builder need not sanitize them again.
            item = dataclasses.replace(_feed_item(article, config, authority, now), content_is_clean=True)
            picked[article.id] = (article, item)
            count += 1
            if limit is not None and count >= limit:
                break

    def order(pair: tuple[int, tuple[Article, FeedItem]]) -> tuple[datetime, int]:
        return _item_order((pair[0], pair[1][1]))

    take(session.scalars(future), None)
    take(session.scalars(current.limit(feed.limit)), feed.limit)
    ranked = sorted(picked.items(), key=order, reverse=True)[: feed.limit]
    wanted = set(_anchored_entries(session, feed, list(include_ids))) - {
        article_id for article_id, _ in ranked
    }
    if wanted:
        picked = {}
        # The anchored entries were selected by the feed's filters already.
        take(session.scalars(_ready_query().where(Article.id.in_(wanted))), None)
        ranked = sorted([*ranked, *picked.items()], key=order, reverse=True)
    entries = [pair for _, pair in ranked]
    if merged_feed(feed):
        return _as_stories(session, entries, config, authority, now)
    return [item for _, item in entries]


def _ready_query() -> Select[Article]:
    return (
        select(Article)
        .join(Source)
        .options(contains_eager(Article.source), defer(Article.raw_html), defer(Article.text))
        .where(Article.status == "ready")
    )


def archive_page_size(feed: FeedConfig) -> int:
    """Items per archive page: never more than the feed's ``limit``, so no item falls in between."""
    return min(feed.archive_page_size, feed.limit)


def archive_ids(session: Session, feed: FeedConfig) -> list[int]:
    """Ids of every article that ever was in ``feed`` (ready or retracted), oldest stored first.

    Archive page ``n`` holds positions ``[(n-1)·size, n·size)`` of this list. Ids only grow, so a page
    once full keeps its articles; a retracted one leaves a hole instead of shifting later pages.
    """
    return archive_slice(session, feed, 0)


def _archive_where(feed: FeedConfig) -> list[Any]:
    return [Article.status.in_(FEED_STATUSES), *_feed_where(feed)]


def archive_count(session: Session, feed: FeedConfig) -> int:
    """``len(archive_ids(session, feed))``, counted by the database."""
    return session.scalar(select(func.count(Article.id)).where(*_archive_where(feed))) or 0


def archive_slice(session: Session, feed: FeedConfig, start: int, stop: int | None = None) -> list[int]:
    """``archive_ids(session, feed)[start:stop]``, without reading the ids before ``start``.

    A render needs only the ids after the last full page, and an archive page its own; reading every
    id ever stored made each render slower as the archive grew.
    """
    if stop is not None and stop <= start:
        return []
    query = select(Article.id).where(*_archive_where(feed)).order_by(Article.id).offset(start)
    if stop is not None:
        query = query.limit(stop - start)
    return list(session.scalars(query))


def _feed_meta(rt: Runtime, feed: FeedConfig, self_base: str, **links: Any) -> FeedMeta:
    base = rt.settings.base_url
    return FeedMeta(
        name=feed.name,
        title=feed.title,
        home_url=rt.config.site_link(feed, base),
        self_url_base=self_base,
        description=feed.description or feed.title,
        language=feed.language,
        id=f"{base}/feeds/{feed.name}",
        stylesheet_url=base + STYLESHEET_PATH,
        max_item_bytes=feed.max_item_bytes,
        max_feed_bytes=feed.max_feed_bytes,
        hub_url=rt.config.websub.hub,
        **links,
    )


def archive_url_base(rt: Runtime, feed_name: str, page: int) -> str:
    """The URL of archive page ``page`` of a feed, without the ``.fmt``."""
    return f"{rt.settings.base_url}/feeds/{feed_name}/archive/{page}"


def current_feed(
    rt: Runtime, session: Session, feed: FeedConfig, now: datetime
) -> tuple[FeedMeta, list[FeedItem]]:
    """What the current (subscription) document of ``feed`` holds, with its RFC 5005 links.

    The newest ``limit`` items plus any not yet on a full archive page, and ``prev-archive`` to the
    newest full page.
    """
    size = archive_page_size(feed)
    pages = archive_count(session, feed) // size
    tail = archive_slice(session, feed, pages * size)
    authority = tag_authority(rt.settings.base_url)
    items = feed_items(session, feed, config=rt.config, authority=authority, now=now, include_ids=tail)
    prev = archive_url_base(rt, feed.name, pages) if pages else None
    meta = _feed_meta(rt, feed, f"{rt.settings.base_url}/feeds/{feed.name}", prev_archive=prev, now=now)
    return meta, items


def archive_page(
    rt: Runtime, session: Session, feed: FeedConfig, page: int
) -> tuple[FeedMeta, list[FeedItem]] | None:
    """Archive page ``page`` (1 = oldest) of ``feed``, or None if that page is not full yet.

    Only full pages are served: they never gain items, so readers may cache them for good.
    """
    size = archive_page_size(feed)
    pages = archive_count(session, feed) // size
    if not 1 <= page <= pages:
        return None
    wanted = archive_slice(session, feed, (page - 1) * size, page * size)
    authority = tag_authority(rt.settings.base_url)
    # A merged feed's page holds the stories whose first version in the feed is among its ids.
    entries = _anchored_entries(session, feed, wanted)
    rows = session.scalars(_ready_query().where(Article.id.in_(entries)))
    # Future dates fall back to stored facts (first seen), so the page's bytes do not follow the clock.
    now = utcnow()
    pairs = sorted(
        ((a.id, (a, _feed_item(a, rt.config, authority, now))) for a in rows),
        key=lambda pair: _item_order((pair[0], pair[1][1])),
        reverse=True,
    )
    if merged_feed(feed):
        items = _as_stories(session, [pair for _, pair in pairs], rt.config, authority, now)
    else:
        items = [item for _, (_, item) in pairs]
    meta = _feed_meta(
        rt,
        feed,
        archive_url_base(rt, feed.name, page),
        current=f"{rt.settings.base_url}/feeds/{feed.name}",
        prev_archive=archive_url_base(rt, feed.name, page - 1) if page > 1 else None,
        next_archive=archive_url_base(rt, feed.name, page + 1) if page < pages else None,
    )
    return meta, items


def render_archive(rt: Runtime, feed_name: str, page: int, fmt: str) -> RenderedFeed | None:
    """Render one archive page of a feed in ``fmt``; None for an unknown feed or page."""
    try:
        feed = rt.config.feed(feed_name)
    except KeyError:
        return None
    with rt.session() as session:
        found = archive_page(rt, session, feed, page)
    if found is None:
        return None
    return build_feed(found[0], found[1], fmt)


def render_feed(rt: Runtime, feed_name: str) -> bool:
    """Render every format of one feed; store the bytes if they changed. Returns whether they did."""
    try:
        feed = rt.config.feed(feed_name)
    except KeyError:
        log.warning("feed %s is no longer configured; skipping render", feed_name)
        return False
    changed = False
    now = utcnow()
    with rt.session() as session:
        meta, items = current_feed(rt, session, feed, now)
        rendered = render_all(meta, items)
        stored = {
            r.format: r for r in session.scalars(select(FeedRender).where(FeedRender.feed_name == feed.name))
        }
        for fmt, out in rendered.items():
            row = stored.get(fmt)
            if row is None:
                row = FeedRender(feed_name=feed.name, format=fmt)
                session.add(row)
            elif row.etag == out.etag:
                continue
            row.body, row.etag, row.content_type = out.body, out.etag, out.content_type
            row.item_count = len(items)
            row.last_modified = now
            row.rendered_at = now
            changed = True
    return changed


# ---------------------------------------------------------------- share


# ---------------------------------------------------------------- ingest


@dataclass(frozen=True)
class PushedArticle:
    """An article pushed over the ingest API (already validated by the HTTP layer)."""

    url: str
    html: str | None = None
    title: str | None = None
    content_html: str | None = None
    summary: str | None = None
    published: datetime | None = None
    authors: Sequence[str] = ()
    category: str | None = None
    tags: Sequence[str] = ()
    image: str | None = None
    language: str | None = None
    source: str | None = None


def synthesize_html(item: PushedArticle) -> str:
    """Turn pushed fields into one HTML document so pushed and crawled articles share one normalizer."""
    ld: dict[str, object] = {"@context": "https://schema.org", "@type": "NewsArticle", "url": item.url}
    if item.title:
        ld["headline"] = item.title
    if item.published:
        ld["datePublished"] = item.published.isoformat()
    if item.authors:
        ld["author"] = [{"@type": "Person", "name": a} for a in item.authors]
    if item.category:
        ld["articleSection"] = item.category
    if item.tags:
        ld["keywords"] = list(item.tags)
    if item.image:
        ld["image"] = item.image
    if item.summary:
        ld["description"] = item.summary
    ld_json = json.dumps(ld, ensure_ascii=False).replace("</", "<\\/")
    lang = f' lang="{html.escape(item.language)}"' if item.language else ""
    title = html.escape(item.title or "")
    desc = f'<meta name="description" content="{html.escape(item.summary)}">' if item.summary else ""
    return (
        f'<!doctype html><html{lang}><head><meta charset="utf-8"><title>{title}</title>{desc}'
        f'<link rel="canonical" href="{html.escape(item.url)}">'
        f'<script type="application/ld+json">{ld_json}</script></head>'
        f"<body><article><h1>{title}</h1>{item.content_html or ''}</article></body></html>"
    )


# Source ids by name once this process synced its config into a database: ``{(url, id(config)):
# (config, ids)}``. A push then costs no re-sync of every source and endpoint row (the config of a
# running process does not change; a process with another config object syncs again).
_synced_sources: dict[tuple[str, int], tuple[Config, dict[str, int]]] = {}


def _pushed_source_id(rt: Runtime, session: Session, name: str) -> tuple[int, dict[str, int] | None]:
    """The id of source ``name``; and the freshly synced ids to remember once the session committed."""
    cached = _synced_sources.get((rt.database_url, id(rt.config)))
    fresh = None
    if cached is None or cached[0] is not rt.config or name not in cached[1]:
        fresh = sync_sources(session, rt.config)
        ids = fresh
    else:
        ids = cached[1]
    if name not in ids:
        raise LookupError(f"no source named {name!r}")
    return ids[name], fresh


def ingest_article(rt: Runtime, item: PushedArticle) -> tuple[int, bool]:
    """Store a pushed article as pending; return ``(id, created)``. Re-pushing a URL updates it."""
    raw = item.html if item.html is not None else (synthesize_html(item) if item.title else None)
    url = normalize_url(item.url)
    with rt.session() as session:
        source_id, fresh = _pushed_source_id(rt, session, item.source or PUSH_SOURCE)
        article = session.scalar(select(Article).where((Article.canonical_url == url) | (Article.url == url)))
        created = article is None
        if article is None:
            article = Article(source_id=source_id, url=url, canonical_url=url)
            session.add(article)
        article.raw_html = raw
        # A URL someone pushed is fetched under the ingest rules (never this deployment's own services).
        article.hints = {**(article.hints or {}), PUSHED_HINT: "1"}
        if article.status == "failed":
            article.status = "pending"
        article.last_seen_at = utcnow()
        session.flush()
        article_id = article.id
    if fresh is not None:  # committed: the rows behind these ids exist
        _synced_sources[(rt.database_url, id(rt.config))] = (rt.config, fresh)
    return article_id, created


def stale_work(rt: Runtime, older_than: timedelta = timedelta(minutes=10)) -> tuple[list[int], list[int]]:
    """Pending articles and shares untouched for ``older_than``, whatever is in flight.

    The database half of :func:`worker.ops.sweep.find_orphans` (which also checks the work markers
    in Redis and the other stages); kept for callers that have no Redis.
    """
    from worker.ops.sweep import pending_articles
    from worker.outbox.leases import stale_shares

    with rt.session() as session:
        articles = pending_articles(session, utcnow() - older_than)
    return articles, stale_shares(rt, older_than)
