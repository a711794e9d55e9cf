"""A snapshot of the system for ``syndicate status``, ``GET /api/status`` and the status page.

One function, :func:`snapshot`, answers "is syndication healthy, and if not, what is failing, since
when and why": sources (last and next crawl, new articles, last error, paused), feeds (items, last
change, share of 304 answers), endpoints (sent today, failed, backlog, disabled and why), the
latest failed articles and shares with their reasons, and worker/beat liveness. Everything in it is
JSON-safe (times as ISO 8601 UTC strings), so the API, the page and the CLI show the same data.
:func:`human_time` and :func:`render_status_text` turn it into words for people.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from config import Config
from worker import feedcache
from worker.metrics import feed_request_totals
from worker.ops import heartbeat
from worker.ops.configwatch import config_status
from worker.ops.heartbeat import is_alive
from worker.outbox.operator import recent_shares
from worker.outbox.skips import SKIP_REASONS, skipped_counts
from worker.share import ENDPOINTS
from worker.store.models import Article, FeedRender, Share, Source, utcnow
from worker.store.models import Endpoint as EndpointRow

log = logging.getLogger(__name__)

RECENT_FAILURES = 20
NEW_ARTICLES_WINDOW = timedelta(hours=24)
SHARE_STATUSES = ("pending", "sending", "sent", "failed", "uncertain")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _source_state(source: Source, now: datetime) -> str:
    """``ok``, ``failing`` (its last crawl failed) or ``backing off`` (beat runs are being skipped)."""
    if getattr(source, "paused_at", None) is not None:
        return "paused"
    if not source.consecutive_errors:
        return "ok" if source.last_success_at is not None or source.kind == "push" else "new"
    if source.next_crawl_at is not None and source.next_crawl_at > now:
        return "backing off"
    return "failing"


def _next_run(source: Source, schedule: float | None, enabled: bool, now: datetime) -> datetime | None:
    """When beat is next expected to crawl the source: the first beat tick (one interval after
    another from the last crawl) not skipped by a back-off; ``now`` when it is due; None for push,
    disabled and paused sources."""
    if not enabled or schedule is None or source.kind == "push":
        return None
    if getattr(source, "paused_at", None) is not None:
        return None
    if source.last_crawl_at is None:
        return now
    due = source.last_crawl_at + timedelta(seconds=schedule)
    if source.next_crawl_at is not None and source.next_crawl_at > due:
        # Beat still ticks every interval; ticks before the back-off ends are skipped.
        skipped = math.ceil((source.next_crawl_at - due).total_seconds() / schedule)
        due += timedelta(seconds=schedule * skipped)
    return max(due, now)


def _recent_skipped(session: Session, source_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The latest articles of a source that were not fetched, and why (robots.txt, backfill)."""
    rows = session.execute(
        select(Article.url, Article.error)
        .where(Article.source_id == source_id, Article.status == "skipped")
        .order_by(Article.id.desc())
        .limit(limit)
    ).all()
    return [{"url": url, "reason": reason} for url, reason in rows]


def _counts_by_source(session: Session, *conditions: Any) -> dict[int, int]:
    query = select(Article.source_id, func.count()).where(*conditions).group_by(Article.source_id)
    return {source_id: count for source_id, count in session.execute(query).all()}


def _sources(session: Session, config: Config, now: datetime) -> list[dict[str, Any]]:
    ready = _counts_by_source(session, Article.status == "ready")
    skipped = _counts_by_source(session, Article.status == "skipped")
    first_crawl = _counts_by_source(session, Article.backfill.is_(True), Article.status != "skipped")
    failed = _counts_by_source(session, Article.status == "failed")
    new = _counts_by_source(
        session, Article.status == "ready", Article.first_seen_at >= now - NEW_ARTICLES_WINDOW
    )
    configured = {s.name: s for s in config.sources}
    out = []
    for source in session.scalars(select(Source).order_by(Source.name)):
        conf = configured.get(source.name)
        if conf is None and source.kind != "push":
            continue
        schedule = float(conf.schedule) if conf is not None else None
        enabled = conf.enabled if conf is not None else True
        next_run = _next_run(source, schedule, enabled, now)
        out.append(
            {
                "name": source.name,
                "kind": source.kind,
                "url": source.url,
                "enabled": enabled,
                "schedule_seconds": schedule,
                "articles": ready.get(source.id, 0),
                "new_articles": new.get(source.id, 0),
                "failed_articles": failed.get(source.id, 0),
                "last_crawl_at": _iso(source.last_crawl_at),
                "last_success_at": _iso(source.last_success_at),
                "next_run_at": _iso(next_run),
                "last_error": source.last_error,
                "crawls": source.crawl_count,
                "errors": source.error_count,
                "state": _source_state(source, now),
                "consecutive_errors": source.consecutive_errors,
                "failing_since": _iso(source.failing_since),
                "next_crawl_at": _iso(source.next_crawl_at),
                # Columns of migration 0004; None on a schema without them.
                "paused_at": _iso(getattr(source, "paused_at", None)),
                "pause_reason": getattr(source, "pause_reason", None),
                "skipped": skipped.get(source.id, 0),
                # Found by the first crawl: the back catalogue, which endpoints share only on purpose.
                "first_crawl": first_crawl.get(source.id, 0),
                "skipped_recent": _recent_skipped(session, source.id) if skipped.get(source.id) else [],
            }
        )
    return out


def _feed_totals(redis_client: Any) -> dict[str, tuple[int, int]] | None:
    """Feed requests and 304s per feed from :mod:`worker.metrics`, or None without Redis."""
    if redis_client is None:
        return None
    try:
        return feed_request_totals(redis_client)
    except Exception as exc:  # Redis down: the page still shows everything the database knows
        log.warning("feed request counts unavailable: %s", exc)
        return None


def _feeds(session: Session, config: Config, base_url: str, redis_client: Any) -> list[dict[str, Any]]:
    renders: dict[str, dict[str, FeedRender]] = {}
    for row in session.scalars(select(FeedRender)):
        renders.setdefault(row.feed_name, {})[row.format] = row
    totals = _feed_totals(redis_client)
    errors = _export_errors(redis_client, [f.name for f in config.feeds])
    out = []
    for feed in config.feeds:
        formats = renders.get(feed.name, {})
        any_row = next(iter(formats.values()), None)
        requests, not_modified = totals.get(feed.name, (0, 0)) if totals is not None else (None, None)
        out.append(
            {
                "name": feed.name,
                "title": feed.title,
                "items": any_row.item_count if any_row else 0,
                "last_modified": _iso(any_row.last_modified) if any_row else None,
                "rendered_at": _iso(max(r.rendered_at for r in formats.values())) if formats else None,
                "requests": requests,
                "not_modified": not_modified,
                "not_modified_share": (not_modified / requests)
                if requests and not_modified is not None
                else None,
                "urls": {fmt: f"{base_url}/feeds/{feed.name}.{fmt}" for fmt in ("rss", "atom", "json")},
                "last_error": errors.get(feed.name, {}).get("error"),
                "last_error_at": errors.get(feed.name, {}).get("at"),
            }
        )
    return out


def _export_errors(redis_client: Any, names: list[str]) -> dict[str, dict[str, str]]:
    """Each feed's failing export (see :mod:`worker.feedcache`), or nothing without Redis."""
    if redis_client is None:
        return {}
    try:
        return feedcache.export_errors(redis_client, names)
    except Exception as exc:  # Redis down: the page still shows everything the database knows
        log.warning("feed export errors unavailable: %s", exc)
        return {}


def _endpoints(session: Session, config: Config, now: datetime) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for endpoint, status, count in session.execute(
        select(Share.endpoint, Share.status, func.count()).group_by(Share.endpoint, Share.status)
    ):
        counts.setdefault(endpoint, {})[status] = count
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sent_today = dict(
        session.execute(
            select(Share.endpoint, func.count())
            .where(Share.status == "sent", Share.sent_at >= midnight)
            .group_by(Share.endpoint)
        ).all()
    )
    rows = {r.name: r for r in session.scalars(select(EndpointRow))}
    skips = skipped_counts(session)
    out = []
    for e in config.endpoints:
        row = rows.get(e.name)
        by_status = counts.get(e.name, {})
        out.append(
            {
                "name": e.name,
                "kind": e.kind,
                "enabled": e.enabled and (row is None or row.disabled_at is None),
                "disabled_reason": row.disabled_reason if row is not None else None,
                "disabled_at": _iso(row.disabled_at) if row is not None else None,
                "last_sent_at": _iso(row.last_sent_at) if row is not None else None,
                "last_error": row.last_error if row is not None else None,
                "last_error_at": _iso(row.last_error_at) if row is not None else None,
                "sent_today": sent_today.get(e.name, 0),
                # Read without secrets (a read-only command): the variables this endpoint still needs.
                "missing_secrets": [m.variable for m in config.missing_secrets_of(e.name)],
                "backlog": by_status.get("pending", 0) + by_status.get("sending", 0),
                # Tokens and sessions (row.state) are never part of the status.
                **{status: by_status.get(status, 0) for status in SHARE_STATUSES},
                **_uncertain_split(e.kind, by_status.get("uncertain", 0)),
                "skipped": sum(skips.get(e.name, {}).values()),
                "skipped_reasons": skips.get(e.name, {}),
            }
        )
    return out


def _uncertain_split(kind: str, uncertain: int) -> dict[str, int]:
    """Uncertain shares a lookup settles by itself (``settling``) and those an operator must check."""
    cls = ENDPOINTS.get(kind)
    settling = uncertain if cls is not None and cls.can_look_up else 0
    return {"settling": settling, "needs_operator": uncertain - settling}


def _failures(session: Session, limit: int = RECENT_FAILURES) -> dict[str, list[dict[str, Any]]]:
    """The latest failed articles and failed or uncertain shares, newest first, with their reasons."""
    articles = [
        {
            "id": a.id,
            "url": a.url,
            "title": a.title,
            "source": a.source.name,
            "error": a.error,
            "attempts": a.attempts,
            "at": _iso(a.fetched_at or a.last_seen_at),
        }
        for a in session.scalars(
            select(Article).where(Article.status == "failed").order_by(Article.id.desc()).limit(limit)
        )
    ]
    shares = [
        {
            "id": s.id,
            "article_id": s.article_id,
            "title": s.article.title or s.article.url,
            "endpoint": s.endpoint,
            "status": s.status,
            "error": s.error,
            "attempts": s.attempts,
            "at": _iso(s.claimed_at or s.created_at),
        }
        for s in session.scalars(
            select(Share)
            .where(or_(Share.status == "failed", Share.status == "uncertain"))
            .order_by(Share.id.desc())
            .limit(limit)
        )
    ]
    return {"articles": articles, "shares": shares}


def _liveness(redis_client: Any) -> dict[str, Any] | None:
    """Worker and beat heartbeats (:mod:`worker.ops.heartbeat`), a verdict each, or why they are unknown."""
    if redis_client is None:
        return None
    try:
        live = heartbeat.liveness(redis_client)
    except Exception as exc:  # Redis down: say so instead of guessing
        return {
            "workers": [],
            "beat": None,
            "standby": [],
            "worker_state": "unknown",
            "beat_state": "unknown",
            "error": f"{type(exc).__name__}: {exc}",
        }
    verdict = heartbeat.judge(live)
    return {**live, "worker_state": verdict.worker, "beat_state": verdict.beat, "error": None}


def snapshot(
    session: Session, config: Config, base_url: str, *, redis_client: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Sources, feeds, endpoints, recent failures and liveness, as JSON-safe data.

    A source's ``state`` is ``new``, ``ok``, ``failing``, ``backing off`` or ``paused``; with
    ``failing_since`` (the first failure in a row) and ``next_run_at`` it tells an operator how long
    it has been broken and when it is tried again. ``skipped_recent`` lists articles never fetched,
    and why. Feed request counts and liveness need ``redis_client`` (else they are None).
    """
    now = now or utcnow()
    article_counts = dict(
        session.execute(select(Article.status, func.count()).group_by(Article.status)).all()
    )
    endpoints = _endpoints(session, config, now)
    return {
        "generated_at": now.isoformat(),
        "recent_shares": recent_shares(session, limit=10),
        "articles": {"total": sum(article_counts.values()), **dict(sorted(article_counts.items()))},
        "sources": _sources(session, config, now),
        "feeds": _feeds(session, config, base_url, redis_client),
        "endpoints": endpoints,
        "outbox_backlog": sum(e["pending"] for e in endpoints),
        "failures": _failures(session),
        "liveness": _liveness(redis_client),
        "config": config_status(redis_client),
    }


def parse_time(value: str | None) -> datetime | None:
    """An ISO time of the snapshot back to an aware datetime (naive ones are UTC)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_delta(seconds: float) -> str:
    """``42 s``, ``3 min``, ``5 h``, ``2 days``: a duration rounded down to its largest unit."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def human_time(value: str | None, now: datetime, never: str = "never") -> str:
    """``3 min ago``, ``in 12 min``, ``just now`` or ``never`` for an ISO time of the snapshot."""
    when = parse_time(value)
    if when is None:
        return never
    delta = (when - now).total_seconds()
    if abs(delta) < 5:
        return "just now"
    return f"in {human_delta(delta)}" if delta > 0 else f"{human_delta(delta)} ago"


def _liveness_line(live: dict[str, Any] | None, now: datetime) -> str:
    if live is None:
        return "liveness: unknown (no Redis)"
    if live.get("error"):
        return f"liveness: unknown ({live['error']})"
    workers = ", ".join(f"{w['name']} {human_delta(w['age_seconds'])} ago" for w in live["workers"]) or "none"
    beat = live.get("beat")
    beat_text = f"{beat['name']} {human_delta(beat['age_seconds'])} ago" if beat else "none"
    worker_state, beat_state = live["worker_state"].upper(), live["beat_state"].upper()
    line = f"worker: {worker_state} ({workers})   beat: {beat_state} ({beat_text})"
    standby = live.get("standby") or []
    if standby:
        line += "   standby: " + ", ".join(
            f"{b['name']} {human_delta(b['age_seconds'])} ago"
            + ("" if is_alive(b["age_seconds"]) else " STALE")
            for b in standby
        )
    return line


def config_lines(info: dict[str, Any] | None) -> list[str]:
    """The config version each process runs, and the error of a file it could not take."""
    if info is None:
        return ["config: unknown (no Redis)"]
    if info.get("unknown"):
        return [f"config: unknown ({info['unknown']})"]
    lines = ["config (version each process runs):"]
    for p in info["processes"]:
        stale = "  (no report for " + human_delta(p["age_seconds"]) + ")" if p["stale"] else ""
        lines.append(f"  {p['role']:<7} {p['name']:<32} {p['version']}{stale}")
        if p["error"]:
            what = f"version {p['error_version']}" if p["error_version"] else "the file"
            lines.append(f"      ERROR: {what} not taken, still running {p['version']}: {p['error']}")
    if not info["processes"]:
        lines.append("  no worker, beat or web process has reported yet")
    return lines


def _storage_line(disk: dict[str, Any]) -> str:
    free = ", ".join(f"{name} {n / 1e6:.1f} MB free" for name, n in disk["free_bytes"].items())
    if disk["state"] == "ok":
        return f"storage: OK ({free})"
    return f"storage: FULL, pushes answered 503 until space is freed: {disk['reason']}"


def render_status_text(snap: dict[str, Any]) -> str:
    """The snapshot as the text ``syndicate status`` prints: the same sections as the status page."""
    now = parse_time(snap.get("generated_at")) or utcnow()
    ht = lambda value, never="never": human_time(value, now, never)  # noqa: E731
    counts = ", ".join(f"{k} {v}" for k, v in snap["articles"].items())
    lines = [f"articles: {counts}", _liveness_line(snap.get("liveness"), now)]
    lines += config_lines(snap.get("config"))
    lines.append("sources:")
    redis_down = bool((snap.get("liveness") or {}).get("error"))
    if snap.get("storage"):
        lines.insert(2, _storage_line(snap["storage"]))
    for s in snap["sources"]:
        state = s["state"].upper()
        if s.get("paused_at"):
            state += f" since {ht(s['paused_at'])}" + (
                f": {s['pause_reason']}" if s.get("pause_reason") else ""
            )
        elif s["last_error"] and s["state"] != "ok":
            state += f" since {ht(s['failing_since'])}: {s['last_error']}"
        skipped = f", {s['skipped']} skipped" if s["skipped"] else ""
        if s.get("first_crawl"):
            skipped += f", {s['first_crawl']} from its first crawl (back catalogue)"
        nxt = f", next {ht(s['next_run_at'], 'not scheduled')}" if s["kind"] != "push" else ""
        if nxt and redis_down:  # beat schedules through Redis: no crawl is coming while it is down
            nxt = ", next unknown (Redis unreachable)"
        lines.append(
            f"  {s['name']:<20} {s['kind']:<8} {s['articles']:>5} articles ({s['new_articles']} new{skipped})"
            f"  last crawl {ht(s['last_crawl_at'])}{nxt}  {state}"
        )
        for entry in s["skipped_recent"][:3]:
            lines.append(f"      skipped {entry['url']}: {entry['reason']}")
    lines.append("feeds:")
    for f in snap["feeds"]:
        share = f.get("not_modified_share")
        served = f", {f['requests']} requests, {share:.0%} 304" if share is not None else ""
        failing = ""
        if f.get("last_error"):
            failing = f"  EXPORT FAILING since {ht(f['last_error_at'])}: {f['last_error']}"
        lines.append(
            f"  {f['name']:<20} {f['items']:>4} items, changed {ht(f['last_modified'])}{served}"
            f"  {f['urls']['rss']}{failing}"
        )
    lines.append(f"share outbox: {snap['outbox_backlog']} pending")
    for e in snap["endpoints"]:
        state = "" if e["enabled"] else f"  DISABLED: {e['disabled_reason'] or 'in the config'}"
        if e.get("missing_secrets"):
            state += f"  NOT CONFIGURED: {', '.join(e['missing_secrets'])} not set"
        error = (
            f"  last error {ht(e['last_error_at'])}: {e['last_error']}"
            if e["enabled"] and e["last_error"]
            else ""
        )
        lines.append(
            f"  {e['name']:<20} {e['kind']:<9} sent {e['sent']}, pending {e['pending']}, "
            f"failed {e['failed']}, uncertain {e['uncertain']}{_uncertain_words(e)}{_skipped_words(e)}; "
            f"sent today {e['sent_today']}, "
            f"backlog {e['backlog']}{state}{error}"
        )
    failures = snap.get("failures") or {"articles": [], "shares": []}
    if failures["articles"] or failures["shares"]:
        lines.append("recent failures (retry: syndicate share retry ID, or the status page):")
    for a in failures["articles"]:
        lines.append(f"  article {a['id']:<6} {a['source']:<16} {a['url']}  {ht(a['at'])}: {a['error']}")
    for sh in failures["shares"]:
        lines.append(
            f"  share {sh['id']:<8} {sh['endpoint']:<16} {sh['status']:<9} article {sh['article_id']}  "
            f"{ht(sh['at'])}: {sh['error']}"
        )
    return "\n".join(lines)


def skipped_words(reasons: dict[str, int]) -> str:
    """``back catalogue: found by its source's first crawl 3, not routed to this endpoint 2``."""
    return ", ".join(f"{SKIP_REASONS.get(r, r)} {n}" for r, n in sorted(reasons.items(), key=lambda i: -i[1]))


def _skipped_words(endpoint: dict[str, Any]) -> str:
    """``, skipped 3 (why)`` for an endpoint's skipped shares, or nothing when there are none."""
    reasons = endpoint.get("skipped_reasons") or {}
    return f", skipped {endpoint['skipped']} ({skipped_words(reasons)})" if reasons else ""


def _uncertain_words(endpoint: dict[str, Any]) -> str:
    """`` (2 being looked up, 1 needs an operator)`` for an endpoint's uncertain shares, or nothing."""
    parts = []
    if endpoint.get("settling"):
        parts.append(f"{endpoint['settling']} being looked up")
    if endpoint.get("needs_operator"):
        parts.append(
            f"{endpoint['needs_operator']} need{'s' if endpoint['needs_operator'] == 1 else ''} an operator"
        )
    return f" ({', '.join(parts)})" if parts else ""


# ---- the snapshot's schema: the response model of GET /api/status (and so its OpenAPI document) ----


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SkippedArticle(_Row):
    """An article a source found but never fetched."""

    url: str
    reason: str | None = Field(description="robots.txt, backfill limit, ...")


class SourceStatus(_Row):
    """One source: its crawls, articles and what is wrong with it."""

    name: str
    kind: str
    url: str
    enabled: bool
    schedule_seconds: float | None = Field(description="beat interval; None for push sources")
    articles: int = Field(description="ready articles")
    new_articles: int = Field(description="ready articles first seen in the last 24 hours")
    failed_articles: int
    last_crawl_at: str | None
    last_success_at: str | None
    next_run_at: str | None = Field(description="when beat next crawls it (None: push, disabled, paused)")
    last_error: str | None
    crawls: int
    errors: int
    state: str = Field(description="new, ok, failing, backing off or paused")
    consecutive_errors: int
    failing_since: str | None = Field(description="first failure of the current run of failures")
    next_crawl_at: str | None = Field(description="end of the back-off after failures")
    paused_at: str | None
    pause_reason: str | None
    skipped: int
    first_crawl: int = Field(description="articles found by the first crawl: the back catalogue")
    skipped_recent: list[SkippedArticle]


class FeedStatus(_Row):
    """One feed: items, last change and how often readers were answered 304."""

    name: str
    title: str
    items: int
    last_modified: str | None = Field(description="last time the feed's items changed")
    rendered_at: str | None
    requests: int | None = Field(description="feed requests answered (None: counts unavailable)")
    not_modified: int | None = Field(description="of which 304 Not Modified")
    not_modified_share: float | None = Field(description="not_modified / requests")
    urls: dict[str, str] = Field(description="format (rss, atom, json) -> URL")
    last_error: str | None = Field(
        default=None, description="why the last export failed (None: the files and served feed are current)"
    )
    last_error_at: str | None = Field(default=None, description="when the last export failed")


class EndpointStatus(_Row):
    """One share endpoint: what was sent, what failed, what waits, and whether it is disabled."""

    name: str
    kind: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: str | None
    last_sent_at: str | None
    last_error: str | None
    last_error_at: str | None
    sent_today: int = Field(description="sent since midnight UTC")
    backlog: int = Field(description="pending + sending")
    pending: int
    sending: int
    sent: int
    failed: int
    uncertain: int
    settling: int = Field(description="uncertain shares a lookup on the network settles by itself")
    needs_operator: int = Field(
        description="uncertain shares an operator must check (the network cannot tell)"
    )
    skipped: int = Field(description="articles the planner did not share to this endpoint")
    skipped_reasons: dict[str, int] = Field(
        description="skipped per reason: first_crawl, back_catalogue, too_old (pushed, dated before the "
        "endpoint was added), routing, same_story (another version of its story is shared there)"
    )
    missing_secrets: list[str] = Field(
        default_factory=list,
        description="variables of its credentials that are not set (read without secrets): not configured",
    )


class RecentShare(_Row):
    """One of the latest shares, whatever its status."""

    id: int
    article_id: int
    title: str
    endpoint: str
    status: str
    attempts: int
    remote_id: str | None
    remote_url: str | None
    error: str | None
    sent_at: str | None
    not_before: str | None


class FailedArticle(_Row):
    """An article that failed for good; ``POST /api/articles/{id}/retry`` tries it again."""

    id: int
    url: str
    title: str | None
    source: str
    error: str | None
    attempts: int
    at: str | None


class FailedShare(_Row):
    """A failed or uncertain share; ``POST /api/shares/{id}/retry`` puts it back in the outbox."""

    id: int
    article_id: int
    title: str
    endpoint: str
    status: str
    error: str | None
    attempts: int
    at: str | None


class Failures(_Row):
    """The latest failures, newest first."""

    articles: list[FailedArticle]
    shares: list[FailedShare]


class Heartbeat(BaseModel):
    """A process's last heartbeat."""

    name: str
    age_seconds: float


class Liveness(BaseModel):
    """Worker and beat heartbeats with a verdict each: ok, stale, missing (or unknown without Redis)."""

    workers: list[Heartbeat]
    beat: Heartbeat | None
    standby: list[Heartbeat] = Field(default_factory=list, description="beats waiting for the leader lock")
    worker_state: str
    beat_state: str
    error: str | None


class ProcessConfig(BaseModel):
    """The config a worker, beat or web process runs (see :mod:`worker.ops.configwatch`)."""

    name: str
    role: str = Field(description="worker, beat or web")
    path: str
    version: str = Field(description="first 12 hex digits of the SHA-256 of the config file it runs")
    error: str | None = Field(description="why the newer file is not taken (the last good one runs)")
    error_version: str | None = Field(description="the version of that invalid file")
    age_seconds: float
    stale: bool = Field(description="no report for 30 s: the process is probably gone")


class ConfigVersions(BaseModel):
    """Which config each process runs, and the error of a file one of them could not take."""

    processes: list[ProcessConfig]
    error: str | None
    unknown: str | None = Field(default=None, description="why the reports could not be read")


class StorageStatus(BaseModel):
    """Whether writes can be stored: ``full`` while a directory is nearly full or a write was refused."""

    state: Literal["ok", "full"]
    reason: str | None
    free_bytes: dict[str, int] = Field(description="free bytes of var/ and of a SQLite database's directory")
    refused: dict[str, dict[str, Any]] = Field(
        description="writes refused for lack of space in the last minutes, by where: at (epoch), reason"
    )


class StatusSnapshot(_Row):
    """``GET /api/status``: everything the status page and ``syndicate status`` show."""

    generated_at: str
    recent_shares: list[RecentShare]
    articles: dict[str, int] = Field(description="total and per status (pending, ready, failed, ...)")
    sources: list[SourceStatus]
    feeds: list[FeedStatus]
    endpoints: list[EndpointStatus]
    outbox_backlog: int
    failures: Failures
    liveness: Liveness | None = Field(description="None when Redis is not configured")
    config: ConfigVersions | None = Field(default=None, description="None when Redis is not configured")
    storage: StorageStatus | None = Field(default=None, description="disk space for the database and var/")
