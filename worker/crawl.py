"""The crawl stage: discover a source's article URLs and store them as pending articles.

Also what a crawl keeps between runs: the ``sources`` rows synced from the config, the validators and
``lastmod`` of every URL fetched (``fetch_states``), and a failing source's backoff. The Celery task in
:mod:`worker.tasks` enqueues the returned ids only after the crawl committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config
from config.model import SourceConfig
from worker import metrics
from worker.errors import FetchError, HostBusy
from worker.fetch import Discovered, FetchResult
from worker.fetch.sources import Document, crawl
from worker.normalize.urls import normalize_url
from worker.runtime import Runtime
from worker.store.endpoints import sync_endpoints
from worker.store.models import MAX_URL_CHARS, PUSH_SOURCE, Article, FetchState, Source, utcnow

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


def short_error(exc: BaseException) -> str:
    """The reason stored on a source or article row: the error's class and message, cut to the column."""
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


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
                store_fetch_state(session, url, self.source_id, etag, last_modified, lastmod, status)
        self.learnt.clear()


def store_fetch_state(
    session: Session,
    url: str,
    source_id: int | None,
    etag: str | None,
    last_modified: str | None,
    lastmod: datetime | None,
    status: int | None,
) -> None:
    """Upsert the ``fetch_states`` row of ``url``: a fetch's validators and status, or a new ``lastmod``."""
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
        report.error = short_error(exc)
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
        source.last_error = short_error(exc)
        source.error_count += 1
        source.consecutive_errors += 1
        source.failing_since = source.failing_since or now
        wait = backoff_delay(schedule, source.consecutive_errors, getattr(exc, "retry_after", None))
        source.next_crawl_at = now + timedelta(seconds=wait)
        source.cursor = None


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
            article.hints = found_item.to_hints()
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
                store_fetch_state(session, url, source_id, None, None, found_item.modified, None)
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
            article.hints = found_item.to_hints() or article.hints
            if found_item.modified is not None:
                store_fetch_state(session, url, source_id, None, None, found_item.modified, None)
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
    # Endpoints get their row (and so their "added" time) as early as sources do.
    sync_endpoints(session, config)
    return {name: row.id for name, row in existing.items()}
