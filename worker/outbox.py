"""The share outbox: which endpoints get an article, when, and how each post is sent exactly once.

Planning (:func:`plan_shares`) makes one ``shares`` row per (article, endpoint) whose routing
rules select the article, except for the back catalogue: an endpoint announces only articles
first seen after it was added and not found by a source's first crawl, unless they were
published within its ``max_age`` (or it sets ``back_catalogue``); a pushed article dated well
before the endpoint was added is old news too. Each (article, endpoint) left out is kept in
``share_skips`` with its reason, so status can say what was not shared and why.
``syndicate share send`` shares an older article on purpose.

Stories: an article of a story shares through it, one share per (story, endpoint) (the unique
index ``uq_shares_story_endpoint``); its other versions are skipped as ``same_story``. The
story's share waits ``story_window`` after the story began, and its claim picks the version that
fits the endpoint best (:func:`best_version`). A version that arrives after the post never posts
again; Mastodon's ``story_edit`` edits the post to name it (:func:`edit_story_post`).

Delivery (:func:`deliver_share`) is exactly-once by construction:

1. Gates, none of which sleeps: the endpoint is disabled (the share waits), the share's
   ``not_before`` (delay after publish, retry schedule), quiet hours, the network's own rate-limit
   block and our pacing (``min_interval``, ``max_per_hour``: a Redis script shared by every worker
   process). A closed gate raises :class:`Deferred` and the task re-enqueues itself with a
   countdown; other endpoints are never held up. A paced endpoint drains its backlog oldest first.
2. A ``sending`` claim is committed before the request.
3. The answer is committed: ``sent`` (with the remote id and URL), ``failed`` (permanent; an
   :class:`~worker.errors.EndpointDisabled` also disables the endpoint), back to ``pending`` on
   the retry schedule, or ``uncertain`` when the request may have reached a network that offers
   neither idempotency nor a lookup.

A share found ``sending`` belonged to a worker that died mid-send once its sending lease in Redis
expired (the live holder refreshes it; :class:`SendingLeases`, about 20 s) or, without Redis, once
the claim is older than the task time limit: idempotent endpoints send again with the same key,
others look their post up, and where they cannot the share becomes ``uncertain`` for an operator
instead of posting twice.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from config import Config
from config.model import EndpointBase
from worker import metrics, sendslots
from worker.errors import (
    EndpointDisabled,
    NormalizeError,
    PermanentShareError,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.http import DEADLINE_FACTOR
from worker.normalize.render import plain_text
from worker.pipeline import PUSHED_HINT
from worker.share import ENDPOINTS, Endpoint, Preview, ShareArticle, ShareResult, idempotency_key
from worker.store.models import Article, Share, ShareSkip, utcnow
from worker.store.models import Endpoint as EndpointRow
from worker.stories.choice import language_rank, version_order

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
# Seconds to wait after the 1st, 2nd, ... failed attempt (the Standard Webhooks schedule): long
# enough to outlast a real outage. Kept in the database (``not_before``), so a restart or a lost
# message does not cut it short.
RETRY_SCHEDULE = (5, 60, 300, 1800, 7200, 18000, 36000, 86400)
STATUSES = ("pending", "sending", "sent", "failed", "uncertain")


class Deferred(Exception):
    """The share may not be sent yet; try again in ``seconds`` (not a failure, not a retry)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"deferred {seconds:.1f}s: {reason}")
        self.seconds = max(0.0, seconds)
        self.reason = reason


def _short(text: str) -> str:
    return text[:MAX_ERROR_CHARS]


# ---------------------------------------------------------------- endpoints in the database


def sync_endpoints(session: Session, config: Config) -> dict[str, EndpointRow]:
    """Make sure every configured endpoint has its row (``added_at`` = first time seen)."""
    rows = {row.name: row for row in session.scalars(select(EndpointRow))}
    for endpoint in config.endpoints:
        row = rows.get(endpoint.name)
        if row is None:
            row = EndpointRow(name=endpoint.name, kind=endpoint.kind, state={})
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:  # another process added it first
                row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint.name))
                assert row is not None
            rows[endpoint.name] = row
        elif row.kind != endpoint.kind:
            # Another network under the same name: its tokens mean nothing there.
            row.kind, row.state = endpoint.kind, {}
    return rows


class DatabaseTokenStore:
    """The :class:`~worker.share.TokenStore` of production: ``endpoints.state`` in the database.

    ``save`` merges: it applies only the keys this process changed or removed since its last
    ``load`` onto the row as it is now, under a row lock, so two workers that each store
    something else (Mastodon's instance limits, a Bluesky session) do not undo each other.
    ``lock`` is a Redis lock shared by every worker (a process lock without Redis).
    """

    def __init__(self, runtime: Runtime) -> None:
        """Store state through ``runtime``'s sessions (and lock through its Redis)."""
        self.runtime = runtime
        self._loaded: dict[str, dict[str, Any]] = {}
        self._local = threading.RLock()

    def load(self, endpoint: str) -> dict[str, Any]:
        """The stored state of ``endpoint`` (empty if none)."""
        with self.runtime.session() as session:
            row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint))
            state = dict(row.state or {}) if row is not None else {}
        self._loaded[endpoint] = copy.deepcopy(state)
        return state

    def cached(self, endpoint: str) -> dict[str, Any]:
        """The state as last loaded or saved by this process (no database round trip)."""
        if endpoint not in self._loaded:
            return self.load(endpoint)
        return copy.deepcopy(self._loaded[endpoint])

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Merge this process's changes to ``endpoint``'s state into the row (committed at once)."""
        base = self._loaded.get(endpoint, {})
        with self.runtime.session() as session:
            # Take the row's write lock first (PostgreSQL row lock; SQLite's write lock).
            session.execute(
                update(EndpointRow).where(EndpointRow.name == endpoint).values(kind=EndpointRow.kind)
            )
            row = session.scalar(select(EndpointRow).where(EndpointRow.name == endpoint))
            if row is None:
                row = sync_endpoints(session, self.runtime.config).get(endpoint)
                if row is None:
                    return
            current = dict(row.state or {})
            for key in base:
                if key not in state:
                    current.pop(key, None)
            for key, value in state.items():
                if key not in base or base[key] != value:
                    current[key] = value
            row.state = current
        self._loaded[endpoint] = copy.deepcopy(current)

    def lock(self, endpoint: str) -> AbstractContextManager[object]:
        """A lock on ``endpoint``'s state held across processes (Redis), for at most a minute."""
        client = self.runtime.redis_client
        if client is None:
            return self._local
        return client.lock(f"syndicate:endpoint-lock:{endpoint}", timeout=60, blocking_timeout=30)


def set_endpoint_enabled(rt: Runtime, name: str, enabled: bool, reason: str | None = None) -> list[int]:
    """Enable or disable endpoint ``name``; return the pending shares to deliver on enabling."""
    rt.config.endpoint(name)  # KeyError for an unknown name
    with rt.session() as session:
        row = sync_endpoints(session, rt.config)[name]
        if enabled:
            row.disabled_at, row.disabled_reason = None, None
            return list(
                session.scalars(
                    select(Share.id)
                    .where(Share.endpoint == name, Share.status == "pending")
                    .order_by(Share.id)
                )
            )
        row.disabled_at, row.disabled_reason = utcnow(), reason or "disabled by an operator"
        return []


# ---------------------------------------------------------------- planning


def _fold(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def routes(config: Config, endpoint: EndpointBase, article: Article) -> bool:
    """Whether the routing rules of ``endpoint`` select ``article`` (feeds, sources, categories, ...)."""
    from worker.pipeline import article_in_feed

    if not endpoint.enabled:
        return False
    if endpoint.sources and article.source.name not in endpoint.sources:
        return False
    if endpoint.categories and (article.category or "").casefold() not in _fold(endpoint.categories):
        return False
    if endpoint.tags and not (_fold(article.tags or []) & _fold(endpoint.tags)):
        return False
    if endpoint.languages:
        language = (article.language or "").casefold().split("-")[0]
        if language not in {code.casefold().split("-")[0] for code in endpoint.languages}:
            return False
    if endpoint.feeds:
        return any(article_in_feed(config.feed(name), article) for name in endpoint.feeds)
    return True


# A pushed article dated this long before its endpoint was added is the back catalogue ("too old").
PUSH_GRACE = timedelta(days=1)
# Why the planner did not share an article to an endpoint (``share_skips.reason``), as people read it.
SKIP_REASONS = {
    "first_crawl": "back catalogue: found by its source's first crawl",
    "back_catalogue": "back catalogue: first seen before the endpoint was added",
    "too_old": "too old: pushed, but published well before the endpoint was added",
    "routing": "not routed to this endpoint",
    "same_story": "another version of its story is shared to this endpoint (one post per story)",
}


def back_catalogue_reason(
    endpoint: EndpointBase, row: EndpointRow, article: Article, now: datetime
) -> str | None:
    """Why ``article`` is old news for ``endpoint`` (a :data:`SKIP_REASONS` key), or None.

    A pushed article has no first crawl: it is old news (``too_old``) when its own date is more than
    :data:`PUSH_GRACE` before the endpoint was added, with the same ``max_age`` exception as a
    crawled article (a story pushed just after it was published is news, even to a new endpoint).
    """
    if endpoint.back_catalogue:
        return None
    if endpoint.max_age is not None and article.published is not None:
        if now - article.published <= timedelta(seconds=endpoint.max_age):
            return None
    if article.backfill:
        return "first_crawl"
    if article.first_seen_at < row.added_at:
        return "back_catalogue"
    pushed = bool((article.hints or {}).get(PUSHED_HINT))
    if pushed and article.published is not None and article.published < row.added_at - PUSH_GRACE:
        return "too_old"
    return None


def in_back_catalogue(endpoint: EndpointBase, row: EndpointRow, article: Article, now: datetime) -> bool:
    """Whether ``article`` is old news for ``endpoint`` (see :func:`back_catalogue_reason`)."""
    return back_catalogue_reason(endpoint, row, article, now) is not None


def plan_shares(rt: Runtime, article_id: int, *, force: Iterable[str] = ()) -> list[int]:
    """Create the outbox rows for one ready article; return the ids of shares to deliver.

    ``force`` names endpoints that share the article even if it is back catalogue or not routed
    to them (an operator's explicit ``syndicate share send``).

    An article of a story (``story_id`` set) shares through its story: one share per (story,
    endpoint), kept by the unique index ``uq_shares_story_endpoint``. The first version planned for
    an endpoint makes the story's share (which version is posted is decided when it is sent, see
    :func:`best_version`); every later one is skipped as ``same_story``, and a story share already
    sent is handed back for delivery where the endpoint edits its posts (Mastodon ``story_edit``).
    """
    forced = set(force)
    pending: list[int] = []
    now = utcnow()
    with rt.session() as session:
        article = session.get(
            Article, article_id, options=[joinedload(Article.source), joinedload(Article.story)]
        )
        if article is None or article.status != "ready":
            return []
        added, fresh = _endpoints_added(rt, session)
        existing = {s.endpoint: s for s in article.shares}
        story_shares = _story_shares(session, article.story_id)
        skipped: dict[str, str] = {}
        for endpoint in rt.config.endpoints:
            share = existing.get(endpoint.name)
            if share is None:
                if endpoint.name not in forced:
                    if not routes(rt.config, endpoint, article):
                        if endpoint.enabled:
                            skipped[endpoint.name] = "routing"
                        continue
                    reason = back_catalogue_reason(endpoint, added[endpoint.name], article, now)
                    if reason is not None:
                        log.debug(
                            "%s: article %s not shared: %s", endpoint.name, article_id, SKIP_REASONS[reason]
                        )
                        skipped[endpoint.name] = reason
                        continue
                share = story_shares.get(endpoint.name)
                if share is None:
                    new_id = _insert_share(
                        session,
                        article.id,
                        endpoint.name,
                        _not_before(endpoint, article, now),
                        article.story_id,
                    )
                    if new_id is not None:
                        pending.append(new_id)
                        continue
                    # Another worker planned it first (for this article, or another version of its
                    # story): theirs counts.
                    share = session.scalar(
                        select(Share).where(Share.article_id == article.id, Share.endpoint == endpoint.name)
                    )
                    if share is None and article.story_id is not None:
                        share = _story_shares(session, article.story_id).get(endpoint.name)
                    if share is None:
                        raise LookupError(f"share of article {article.id} to {endpoint.name} vanished")
                if share.article_id != article.id:
                    skipped[endpoint.name] = "same_story"
                    if share.status == "sent" and _edits_posts(endpoint):
                        pending.append(share.id)  # delivering a sent story share edits its post
                    if endpoint.name not in forced:
                        continue
            if endpoint.name in forced and share.status in ("failed", "uncertain"):
                share.status, share.not_before, share.attempts = "pending", None, 0
            if share.status == "pending":
                pending.append(share.id)
        _record_skips(
            session, article.id, skipped, [e.name for e in rt.config.endpoints if e.name not in skipped]
        )
    if fresh:  # committed: the rows and their added_at are stored
        _synced_endpoints[(rt.database_url, id(rt.config))] = (rt.config, added)
    return pending


def _story_shares(session: Session, story_id: int | None) -> dict[str, Share]:
    """The shares of story ``story_id`` by endpoint (none without a story)."""
    if story_id is None:
        return {}
    return {s.endpoint: s for s in session.scalars(select(Share).where(Share.story_id == story_id))}


def _edits_posts(endpoint: EndpointBase) -> bool:
    """Whether ``endpoint`` edits a story's post when another version arrives (Mastodon ``story_edit``)."""
    return bool(getattr(endpoint, "story_edit", False))


def _not_before(endpoint: EndpointBase, article: Article, now: datetime) -> datetime | None:
    """When a new share of ``article`` to ``endpoint`` may go out first.

    ``delay`` after now; for an article of a story also ``story_window`` after the story began (its
    ``created_at``: when its first version became ready), so that the version that fits the endpoint
    best can arrive. Pacing and quiet hours still apply at delivery.
    """
    moments = [now + timedelta(seconds=endpoint.delay)] if endpoint.delay else []
    story = article.story
    if story is not None and endpoint.story_window:
        moments.append(story.created_at + timedelta(seconds=endpoint.story_window))
    latest = max(moments, default=None)
    return latest if latest is not None and latest > now else None


# Endpoint rows (for ``added_at``) once this process synced them: ``{(url, id(config)): (config, rows)}``.
# ``added_at`` never changes once a row exists, so planning need not read every endpoint row again.
_synced_endpoints: dict[tuple[str, int], tuple[Config, dict[str, EndpointRow]]] = {}


def _endpoints_added(rt: Runtime, session: Session) -> tuple[dict[str, EndpointRow], bool]:
    """The endpoint rows of ``rt.config`` (for ``added_at``); and whether to remember them after commit."""
    cached = _synced_endpoints.get((rt.database_url, id(rt.config)))
    if cached is not None and cached[0] is rt.config:
        return cached[1], False
    rows = sync_endpoints(session, rt.config)
    session.flush()
    return rows, True


def _record_skips(session: Session, article_id: int, skipped: dict[str, str], planned: list[str]) -> None:
    """Keep ``share_skips`` in step with this planning: a row per skipped endpoint, none for the others."""
    if planned:
        session.execute(
            delete(ShareSkip).where(ShareSkip.article_id == article_id, ShareSkip.endpoint.in_(planned))
        )
    if not skipped:
        return
    rows = [
        {"article_id": article_id, "endpoint": name, "reason": why, "created_at": utcnow()}
        for name, why in skipped.items()
    ]
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(ShareSkip).values(rows)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["article_id", "endpoint"], set_={"reason": statement.excluded.reason}
            )
        )
        _drop_held_skips(session, article_id)
        return
    known = {
        s.endpoint: s for s in session.scalars(select(ShareSkip).where(ShareSkip.article_id == article_id))
    }
    for name, why in skipped.items():
        if name in known:
            known[name].reason = why
        else:
            session.add(ShareSkip(article_id=article_id, endpoint=name, reason=why))
    session.flush()
    _drop_held_skips(session, article_id)


def _drop_held_skips(session: Session, article_id: int) -> None:
    """No skip row where the article holds the endpoint's share: a delivery moved its story's share to
    this version (``_claim_pending``) after this planning had read the share on another version."""
    held = select(Share.endpoint).where(Share.article_id == article_id)
    session.execute(
        delete(ShareSkip)
        .where(ShareSkip.article_id == article_id, ShareSkip.endpoint.in_(held))
        .execution_options(synchronize_session=False)
    )


def skipped_counts(session: Session) -> dict[str, dict[str, int]]:
    """Skipped shares per endpoint and reason: ``{endpoint: {reason: count}}``."""
    out: dict[str, dict[str, int]] = {}
    for endpoint, reason, count in session.execute(
        select(ShareSkip.endpoint, ShareSkip.reason, func.count()).group_by(
            ShareSkip.endpoint, ShareSkip.reason
        )
    ):
        out.setdefault(endpoint, {})[reason] = count
    return out


def _insert_share(
    session: Session, article_id: int, endpoint: str, not_before: datetime | None, story_id: int | None = None
) -> int | None:
    """Insert the share row; its id, or None when another worker inserted it first.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` on PostgreSQL and SQLite instead of a
    savepoint, the insert and its release (three round trips, and a rollback on a conflict). The
    conflict may be on (article, endpoint) or on (story, endpoint), where another version of the
    story won the race: no conflict target, so either unique index makes the insert do nothing
    (elsewhere the IntegrityError does).
    """
    values = {
        "article_id": article_id,
        "story_id": story_id,
        "endpoint": endpoint,
        "not_before": not_before,
        "status": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        share = Share(**values)
        try:
            with session.begin_nested():
                session.add(share)
        except IntegrityError:
            return None
        return share.id
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Share).values(**values).on_conflict_do_nothing().returning(Share.id)
    return session.scalar(statement)


# The most of an article's text a share may quote (EndpointBase.summary_length allows up to this).
LEAD_CHARS = 5000


def _lead(content_html: str | None) -> str:
    """The opening of the stored body's plain text (the normalizer's: captions left out)."""
    if not content_html:
        return ""
    try:
        return plain_text(content_html)[:LEAD_CHARS]
    except NormalizeError:
        return ""


def share_article_view(article: Article) -> ShareArticle:
    """The article as an endpoint sees it."""
    return ShareArticle(
        article_id=article.id,
        url=article.canonical_url,
        title=article.title or article.canonical_url,
        summary=article.summary or "",
        source=article.source.name,
        category=article.category,
        tags=tuple(article.tags or ()),
        authors=tuple(article.authors or ()),
        published=article.published,
        image=article.image,
        language=article.language,
        first_seen=article.first_seen_at,
        lead=_lead(article.content_html),
    )


# ---------------------------------------------------------------- pacing


_RESERVE = """
local sent_key, block_key = KEYS[1], KEYS[2]
local now, min_interval, per_hour = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', block_key) or '0')
if blocked > now then return tostring(blocked - now) end
redis.call('ZREMRANGEBYSCORE', sent_key, '-inf', now - 3600)
if min_interval > 0 then
  local last = redis.call('ZREVRANGE', sent_key, 0, 0, 'WITHSCORES')
  if last[2] and now - tonumber(last[2]) < min_interval then
    return tostring(min_interval - (now - tonumber(last[2])))
  end
end
if per_hour > 0 and redis.call('ZCARD', sent_key) >= per_hour then
  local first = redis.call('ZRANGE', sent_key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(first[2]) + 3600 - now)
end
if min_interval > 0 or per_hour > 0 then
  redis.call('ZADD', sent_key, now, ARGV[4])
  redis.call('EXPIRE', sent_key, 3700)
end
return '0'
"""


class Pacer:
    """Per-endpoint pacing and network rate-limit blocks, shared by all processes through Redis."""

    def __init__(self, redis_client: Any) -> None:
        """Keep pacing state in ``redis_client`` (``None``: no pacing, e.g. an inline CLI run)."""
        self.redis = redis_client
        self._script = redis_client.register_script(_RESERVE) if redis_client is not None else None

    def reserve(self, endpoint: EndpointBase, token: str) -> float:
        """Take a send slot for ``endpoint`` now (return 0) or say how many seconds until one opens."""
        if self._script is None:
            return 0.0
        import redis

        try:
            wait = self._script(
                keys=[f"syndicate:pace:{endpoint.name}", f"syndicate:block:{endpoint.name}"],
                args=[time.time(), endpoint.min_interval or 0, endpoint.max_per_hour or 0, token],
            )
        except redis.RedisError as exc:
            if not (endpoint.min_interval or endpoint.max_per_hour):
                return 0.0  # nothing to pace; a network's block is lost with Redis, its 429 comes back
            raise Deferred(30.0, f"pacing needs Redis, which is unreachable: {exc}") from None
        return float(wait)

    def block(self, endpoint: str, seconds: float) -> None:
        """Hold every post to ``endpoint`` for ``seconds`` (the network said so)."""
        if self.redis is not None and seconds > 0:
            import redis

            until = time.time() + seconds
            try:
                self.redis.set(f"syndicate:block:{endpoint}", str(until), ex=int(seconds) + 1)
            except redis.RedisError as exc:
                log.warning("%s: cannot record the network's rate-limit block: %s", endpoint, exc)


def quiet_wait(endpoint: EndpointBase, now: datetime) -> float:
    """Seconds until ``endpoint``'s quiet hours end, or 0 outside them."""
    quiet = endpoint.quiet_hours
    if quiet is None:
        return 0.0
    local = now.astimezone(ZoneInfo(quiet.timezone))
    start, end = quiet.minutes()
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside or start == end:
        return 0.0
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    # Subtract in UTC: on a night the clocks change, wall-clock minutes are not real minutes.
    return (ends.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


# ---------------------------------------------------------------- sending leases

# A claim's holder keeps ``syndicate:sending:<share id>`` alive in Redis while it sends (refreshed
# every SENDING_REFRESH seconds by a thread of its process, so a slow but live request keeps it);
# a holder that died stops refreshing and the key expires. A claim older than SENDING_TTL whose
# key is gone is dead, and recovered within a sweep of that, not after the task time limit (the
# claim lease, 300 s by default). Without Redis the claim lease alone decides, as before.
SENDING_TTL = 20.0
SENDING_REFRESH = 5.0
SENDING_PREFIX = "syndicate:sending:"


class SendingLeases:
    """The sending leases this process holds, kept alive by one daemon thread (see above)."""

    def __init__(self, redis_client: Any) -> None:
        """Keep leases in ``redis_client`` (``None``: no leases, the claim lease alone decides)."""
        self.redis = redis_client
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, share_ids: Iterable[int]) -> None:
        import redis

        try:
            pipe = self.redis.pipeline(transaction=False)
            for share_id in share_ids:
                pipe.set(SENDING_PREFIX + str(share_id), self._held.get(share_id, "1"), ex=int(SENDING_TTL))
            pipe.execute()
        except redis.RedisError as exc:  # the claim lease still bounds the claim
            log.warning("sending leases not written: %s", exc)

    def _refresh(self) -> None:
        while True:
            time.sleep(SENDING_REFRESH)
            with self._lock:
                held = list(self._held)
            if held:
                self._write(held)

    @contextmanager
    def hold(self, share_id: int) -> Iterator[None]:
        """Hold the lease of ``share_id`` (just claimed) until the block ends (its outcome committed)."""
        if self.redis is None:
            yield
            return
        with self._lock:
            self._held[share_id] = f"{os.getpid()}"
            if self._thread is None or not self._thread.is_alive() or self._thread.ident is None:
                self._thread = threading.Thread(target=self._refresh, name="sending-leases", daemon=True)
                self._thread.start()
        self._write([share_id])
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(share_id, None)
            import redis

            try:
                self.redis.delete(SENDING_PREFIX + str(share_id))
            except redis.RedisError as exc:
                log.warning("sending lease of share %s not released: %s", share_id, exc)

    def alive(self, share_ids: Sequence[int]) -> set[int] | None:
        """Which of ``share_ids`` have a live lease; None when Redis cannot say (then assume all)."""
        if self.redis is None or not share_ids:
            return None if self.redis is None else set()
        import redis

        try:
            values = self.redis.mget([SENDING_PREFIX + str(i) for i in share_ids])
        except redis.RedisError:
            return None
        return {i for i, value in zip(share_ids, values, strict=True) if value is not None}


def claim_is_dead(rt: Runtime, share_id: int, age: float) -> bool:
    """Whether a ``sending`` claim ``age`` seconds old can no longer belong to a live sender."""
    if age >= rt.claim_lease:
        return True
    if age < SENDING_TTL:
        return False  # its holder may not have written its lease yet
    alive = rt.sending_leases.alive([share_id])
    return alive is not None and share_id not in alive


# ---------------------------------------------------------------- delivery


@dataclass
class _Claim:
    share_id: int
    endpoint: str
    view: ShareArticle
    recovering: bool


def _paced(endpoint: EndpointBase) -> bool:
    return bool(endpoint.min_interval or endpoint.max_per_hour)


def _oldest_due(session: Session, endpoint: str, now: datetime) -> int | None:
    """The pending share of ``endpoint`` that should go out next: the oldest story first."""
    return session.scalar(
        select(Share.id)
        .join(Article)
        .where(
            Share.endpoint == endpoint,
            Share.status == "pending",
            (Share.not_before.is_(None)) | (Share.not_before <= now),
        )
        .order_by(func.coalesce(Article.published, Article.first_seen_at), Share.id)
        .limit(1)
    )


def _claim(rt: Runtime, share_id: int, lease: float, config: EndpointBase | None = None) -> _Claim | str:
    """Move ``share_id`` to ``sending`` (committed) or say why not: a final status or Deferred.

    A story's share is claimed for the version that fits ``config`` best (:func:`best_version`):
    the claim moves the share to that article in the same UPDATE, so the text, the idempotency key
    and a recovery after a crash all stay with the version chosen here. A recovered claim keeps
    its version (sending another one could post twice).
    """
    now = utcnow()
    with rt.session() as session:
        # The article and its source come with the share: the claim needs them for the view.
        share = session.get(Share, share_id, options=[joinedload(Share.article).joinedload(Article.source)])
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        recovering = False
        if share.status == "sending":
            claimed = share.claimed_at or now
            age = (now - claimed).total_seconds()
            if not claim_is_dead(rt, share_id, age):
                # Look again once a dead holder's lease would have expired (or the claim lease ends).
                wait = lease - age if rt.redis_client is None else max(SENDING_TTL - age, SENDING_REFRESH)
                raise Deferred(min(wait, lease - age), "another worker is sending it")
            recovering = True
        elif share.status != "pending":
            return share.status
        article = share.article
        if not recovering:
            values: dict[str, Any] = {"status": "sending", "claimed_at": now, "attempts": Share.attempts + 1}
            if share.story_id is not None and config is not None:
                article = best_version(session, rt.config, config, share)
            claimed_rows = _claim_pending(session, share, values, article)
            if claimed_rows is None:  # the chosen version has a share of its own after all
                article = share.article
                claimed_rows = _claim_pending(session, share, values, article)
            if claimed_rows == 0:
                session.rollback()
                return "claimed"
        else:
            # Take over a dead worker's claim atomically: two redeliveries must not both recover it.
            taken = session.execute(  # type: ignore[attr-defined]
                update(Share)
                .where(Share.id == share_id, Share.status == "sending", Share.claimed_at == share.claimed_at)
                .values(claimed_at=now, attempts=Share.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 0:
                session.rollback()
                return "claimed"
        # The update changed only the claim columns, which the view does not read: no refresh.
        return _Claim(share_id, share.endpoint, share_article_view(article), recovering)


def _claim_pending(session: Session, share: Share, values: dict[str, Any], article: Article) -> int | None:
    """Claim pending ``share`` for ``article``: rows claimed (0: taken), None if that article is taken.

    Moving a story's share to another version keeps ``share_skips`` in step: the version posted
    loses its ``same_story`` skip, the one it replaces gets it.
    """
    statement = (
        update(Share)
        .where(Share.id == share.id, Share.status == "pending")
        .execution_options(synchronize_session=False)
    )
    if article.id == share.article_id:
        return int(session.execute(statement.values(**values)).rowcount)  # type: ignore[attr-defined]
    try:
        with session.begin_nested():
            claimed = int(
                session.execute(statement.values(**values, article_id=article.id)).rowcount  # type: ignore[attr-defined]
            )
    except IntegrityError:  # (article, endpoint) is unique: that version was planned on its own
        return None
    if claimed:
        _record_skips(session, article.id, {}, [share.endpoint])
        _record_skips(session, share.article_id, {share.endpoint: "same_story"}, [])
    return claimed


def version_key(config: Config, endpoint: EndpointBase, article: Article) -> tuple[Any, ...]:
    """How well ``article`` fits ``endpoint`` (smallest first): its ``languages``, then the main rule."""
    try:
        priority = config.source(article.source.name).priority
    except KeyError:  # a source no longer configured
        priority = 0
    return (
        language_rank(article.language, endpoint.languages),
        *version_order(article, priority, config.stories.languages),
    )


def best_version(session: Session, config: Config, endpoint: EndpointBase, share: Share) -> Article:
    """The ready version of ``share``'s story that ``endpoint`` should post (its own article if none fits).

    Only versions the endpoint's routing rules select, and none that has a share of its own to
    this endpoint (the unique (article, endpoint) index), are considered.
    """
    taken = select(Share.article_id).where(Share.endpoint == share.endpoint, Share.id != share.id)
    versions = session.scalars(
        select(Article)
        .options(joinedload(Article.source))
        .where(Article.story_id == share.story_id, Article.status == "ready", Article.id.not_in(taken))
    ).all()
    fitting = [article for article in versions if routes(config, endpoint, article)]
    if not fitting:
        return share.article
    return min(fitting, key=lambda article: version_key(config, endpoint, article))


def _finish(rt: Runtime, share_id: int, **values: Any) -> str:
    """Record a delivery's outcome on the share and its endpoint row, in one transaction.

    Two UPDATEs and no reads: the share's endpoint and resulting state come back with RETURNING.
    An endpoint row that does not exist (an endpoint no longer configured) is simply not touched.
    """
    with rt.session() as session:
        found = session.execute(
            update(Share)
            .where(Share.id == share_id)
            .values(**values)
            .returning(Share.endpoint, Share.status, Share.error, Share.sent_at)
            .execution_options(synchronize_session=False)
        ).first()
        if found is None:
            raise LookupError(f"no share with id {share_id}")
        endpoint, status, error, sent_at = found
        metrics.count_share(endpoint, status)
        if status == "sent":
            touched: dict[str, Any] = {"last_sent_at": sent_at}
        elif error:
            touched = {"last_error": error, "last_error_at": utcnow()}
        else:
            return str(status)
        session.execute(
            update(EndpointRow)
            .where(EndpointRow.name == endpoint)
            .values(**touched)
            .execution_options(synchronize_session=False)
        )
        return str(status)


def _disable(rt: Runtime, name: str, reason: str) -> None:
    with rt.session() as session:
        row = sync_endpoints(session, rt.config).get(name)
        if row is not None and row.disabled_at is None:
            row.disabled_at, row.disabled_reason = utcnow(), reason
    log.error("endpoint %s disabled: %s (re-enable with `syndicate endpoint enable %s`)", name, reason, name)


def _retry_later(rt: Runtime, share_id: int, endpoint: str, exc: TransientShareError, attempts: int) -> str:
    """Put a share back to ``pending`` on the retry schedule, or fail it when the schedule is used up."""
    message = _short(str(exc))
    if exc.status == 429 and exc.retry_after is not None:
        # Being told to wait is not a failed attempt: wait exactly as long, keep the retry budget.
        rt.pacer.block(endpoint, exc.retry_after)
        _finish(
            rt,
            share_id,
            status="pending",
            error=message,
            attempts=max(0, attempts - 1),
            not_before=utcnow() + timedelta(seconds=exc.retry_after),
        )
        raise Deferred(exc.retry_after, message)
    schedule = rt.settings.share_retry_schedule or RETRY_SCHEDULE
    if attempts > len(schedule):
        return _finish(rt, share_id, status="failed", error=f"gave up after {attempts} attempts: {message}")
    wait = max(float(schedule[attempts - 1]), exc.retry_after or 0.0)
    _finish(rt, share_id, status="pending", error=message, not_before=utcnow() + timedelta(seconds=wait))
    raise Deferred(wait, message)


def deliver_share(rt: Runtime, share_id: int) -> str:
    """Deliver one outbox row (see the module docstring); return the share's status.

    Raises :class:`Deferred` when the share (or the slot this message stands for) must wait.
    """
    with rt.session() as session:
        # The share and its endpoint's disabled state in one query (the endpoint row is only
        # created here if this process is the first to see a newly configured endpoint).
        found = session.execute(
            select(
                Share.status,
                Share.endpoint,
                Share.not_before,
                Share.story_id,
                EndpointRow.name.label("row_name"),
                EndpointRow.disabled_at,
                EndpointRow.disabled_reason,
            )
            .outerjoin(EndpointRow, EndpointRow.name == Share.endpoint)
            .where(Share.id == share_id)
        ).first()
        if found is None:
            raise LookupError(f"no share with id {share_id}")
        status, name, not_before = found.status, found.endpoint, found.not_before
        if status == "uncertain":
            settled = settle_share(rt, share_id)
            return deliver_share(rt, share_id) if settled == "pending" else settled
        if status == "sent" and found.story_id is not None:
            return edit_story_post(rt, share_id)  # a version arrived after the post
        if status not in ("pending", "sending"):
            return status
        disabled_at, disabled_reason = found.disabled_at, found.disabled_reason
        if found.row_name is None:
            row = sync_endpoints(session, rt.config).get(name)
            if row is not None:
                disabled_at, disabled_reason = row.disabled_at, row.disabled_reason
    try:
        config = rt.config.endpoint(name)
    except KeyError:
        return _finish(rt, share_id, status="failed", error=f"endpoint {name!r} is no longer configured")
    if disabled_at is not None:
        log.info("share %s waits: endpoint %s is disabled (%s)", share_id, name, disabled_reason)
        return "held"
    now = utcnow()
    if status == "pending":
        if not_before is not None and not_before > now:
            raise Deferred((not_before - now).total_seconds(), "not before its scheduled time")
        quiet = quiet_wait(config, now)
        if quiet > 0:
            raise Deferred(quiet, "quiet hours")
        wait = rt.pacer.reserve(config, f"{share_id}:{time.time()}")
        if wait > 0:
            raise Deferred(wait, "endpoint paced or rate-limited")
        if _paced(config):
            # This message stands for one slot of the endpoint: spend it on the oldest story.
            with rt.session() as session:
                target = _oldest_due(session, name, now) or share_id
            if target != share_id:
                _deliver_claimed(rt, target, config)
                raise Deferred(config.min_interval or 1.0, "slot used for an older story")
    status = _deliver_claimed(rt, share_id, config)
    if status == "sent" and _edits_posts(config):
        edit_story_post(rt, share_id, joined_while_sending=True)
    return status


def _deliver_claimed(rt: Runtime, share_id: int, config: EndpointBase) -> str:
    # A slow endpoint's sends may hold all of this worker's slots but one (see worker/sendslots.py).
    slot = sendslots.acquire(rt.redis_client, config.name)
    if slot.wait > 0:
        raise Deferred(slot.wait, "slow endpoint: its sends hold this worker's slots but one")
    with slot:
        claim = _claim(rt, share_id, rt.claim_lease, config)
        if isinstance(claim, str):
            return claim
        slot.sending()
        with rt.sending_leases.hold(share_id):
            return _send_claimed(rt, share_id, config, claim)


def _send_claimed(rt: Runtime, share_id: int, config: EndpointBase, claim: _Claim) -> str:
    endpoint = rt.endpoint(config.name)
    key = idempotency_key(claim.view, config.name)
    try:
        preview = endpoint.render(claim.view)
    except PermanentShareError as exc:
        return _finish(rt, share_id, status="failed", error=_short(str(exc)))
    except Exception as exc:  # a rendering bug: nothing was sent, and retrying renders the same
        log.exception("%s: rendering share %s failed", config.name, share_id)
        return _finish(
            rt, share_id, status="failed", error=_short(f"internal error: {type(exc).__name__}: {exc}")
        )
    try:
        if claim.recovering and not endpoint.idempotent:
            try:
                found = endpoint.lookup(preview, key)
            except NotImplementedError:
                return _finish(
                    rt,
                    share_id,
                    status="uncertain",
                    error="a worker stopped while posting and this network cannot tell whether the post "
                    "went out; check it, then `syndicate share retry` or `syndicate share mark-sent`",
                )
            if found is not None:
                return _sent(rt, share_id, endpoint, found, preview.text)
        result = endpoint.publish(preview, key)
    except EndpointDisabled as exc:
        _disable(rt, config.name, _short(str(exc)))
        return _finish(rt, share_id, status="failed", error=_short(str(exc)))
    except PermanentShareError as exc:
        return _finish(rt, share_id, status="failed", error=_short(str(exc)))
    except UncertainShare as exc:
        return _finish(rt, share_id, status="uncertain", error=_short(str(exc)))
    except Exception as exc:
        if isinstance(exc, TransientShareError):
            transient = exc
        else:
            # A bug, not an answer: the post may or may not have gone out, so it is treated like a
            # lost answer (retried on the schedule where that is safe, else uncertain), never looped.
            log.exception("%s: delivering share %s failed unexpectedly", config.name, share_id)
            transient = TransientShareError(
                endpoint.redact(f"{config.name}: internal error: {type(exc).__name__}: {exc}"), sent=True
            )
        return _after_transient(rt, share_id, config, endpoint, preview, key, transient)
    return _sent(rt, share_id, endpoint, result, preview.text)


def _after_transient(
    rt: Runtime,
    share_id: int,
    config: EndpointBase,
    endpoint: Endpoint,
    preview: Preview,
    key: str,
    exc: TransientShareError,
) -> str:
    """A transient failure: look the post up if it may have gone out, else retry on the schedule.

    A lost answer (``exc.sent``: no answer within the endpoint's ``timeout``, a broken connection)
    on a network that can look posts up makes the share ``uncertain`` until a lookup settles it
    (:func:`settle_share`), even where the key would make a resend safe: a slow network answers
    every resend late too. Idempotent networks without a lookup are sent again with the same key
    (a webhook's ``webhook-id``), which the share's error says; the others become ``uncertain``
    for an operator.
    """
    attempts = _attempts(rt, share_id)
    if exc.sent and (not endpoint.idempotent or endpoint.can_look_up):
        try:
            found = endpoint.lookup(preview, key)
        except NotImplementedError:
            return _finish(
                rt,
                share_id,
                status="uncertain",
                error=_short(
                    f"{OPERATOR_NOTE}: no answer after the request went out; the post may exist: {exc}"
                ),
            )
        except ShareError as lookup_error:
            log.info(
                "%s: share %s: lookup after a lost answer failed: %s", config.name, share_id, lookup_error
            )
            found = None
        if found is not None:
            return _sent(rt, share_id, endpoint, found, preview.text)
    if exc.sent and endpoint.can_look_up:
        wait = SETTLE_FIRST_CHECK
        _finish(
            rt,
            share_id,
            status="uncertain",
            not_before=utcnow() + timedelta(seconds=wait),
            error=_short(f"{SETTLING_NOTE}: {exc}"),
        )
        raise Deferred(wait, "no answer; looking the post up")
    if exc.sent and endpoint.idempotent:
        exc = TransientShareError(
            f"{exc} (sending again with the same idempotency key; raise the endpoint's `timeout` "
            "if the network is just slow)",
            status=exc.status,
            retry_after=exc.retry_after,
            sent=True,
        )
    return _retry_later(rt, share_id, config.name, exc, attempts)


# ---------------------------------------------------------------- editing a story's post

# What an edited post adds after the text it was sent with (Mastodon ``story_edit``).
ALSO_REPORTED = "\n\nAlso reported by: "
# An edit the network could not take is tried again after EDIT_RETRY, then after half the time since
# the newest version arrived (at most SETTLE_MAX_WAIT), and given up EDIT_GIVE_UP after it: never looped.
EDIT_RETRY = 60.0
EDIT_GIVE_UP = timedelta(days=1)
_edit_locks = threading.Lock()  # without Redis: one process


def story_edit_text(endpoint: Endpoint, posted: str, mentions: Sequence[str]) -> str:
    """The post's text naming ``mentions`` ("<source> <url>"), within the network's limit.

    Computed from the text the post was sent with (``posted``, any earlier "Also reported by"
    cut off) and the story's versions, never appended: the same versions give the same text. A
    mention that does not fit is left out.
    """
    base = posted.partition(ALSO_REPORTED)[0]
    limit = endpoint.text_limit()
    listed: list[str] = []
    for mention in mentions:
        candidate = base + ALSO_REPORTED + ", ".join([*listed, mention])
        if limit is None or endpoint.text_length(candidate) <= limit:
            listed.append(mention)
    return base + ALSO_REPORTED + ", ".join(listed) if listed else base


def _edit_lock(rt: Runtime, share_id: int) -> AbstractContextManager[object]:
    if rt.redis_client is None:
        return _edit_locks
    return rt.redis_client.lock(f"syndicate:story-edit:{share_id}", timeout=60, blocking_timeout=30)


def edit_story_post(rt: Runtime, share_id: int, *, joined_while_sending: bool = False) -> str:
    """Name the story's other versions in its sent post where the endpoint edits (``story_edit``).

    Runs when a version arrives after the post was sent (its planning hands the story's share back
    for delivery) and right after sending (``joined_while_sending``: only if a version became
    ready after the claim). Exactly once per text: the text is computed from the story's versions
    under a lock per share and stored as the share's ``text`` once the network took it, so a
    second run finds nothing to change. A network that cannot take the edit now raises
    :class:`Deferred` (given up :data:`EDIT_GIVE_UP` after the newest version arrived); one that
    refuses it is logged, and the post stays as it is.
    """
    import redis  # the Redis client library is imported where it is used, as elsewhere here

    try:
        with _edit_lock(rt, share_id):
            return _edit_story_post(rt, share_id, joined_while_sending)
    except redis.exceptions.LockError:
        raise Deferred(EDIT_RETRY, "another worker is editing the story's post") from None


def _edit_story_post(rt: Runtime, share_id: int, joined_while_sending: bool) -> str:
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        if share.status != "sent" or share.story_id is None or not share.remote_id or share.text is None:
            return share.status
        try:
            config = rt.config.endpoint(share.endpoint)
        except KeyError:
            return share.status
        if not _edits_posts(config):
            return share.status
        query = select(Article).options(joinedload(Article.source))
        versions = list(
            session.scalars(
                query.where(
                    Article.story_id == share.story_id,
                    Article.status == "ready",
                    Article.id != share.article_id,
                )
            )
        )
        if joined_while_sending and not any(
            v.changed_at is not None and share.claimed_at is not None and v.changed_at >= share.claimed_at
            for v in versions
        ):
            return share.status
        versions.sort(key=lambda v: version_key(rt.config, config, v))
        mentions = [f"{_source_title(rt.config, v)} {v.canonical_url}" for v in versions]
        remote_id, posted = share.remote_id, share.text
        arrived = [v.changed_at for v in versions if v.changed_at is not None]
        newest = max(arrived, default=share.sent_at or utcnow())
    endpoint = rt.endpoint(config.name)
    text = story_edit_text(endpoint, posted, mentions)
    if text == posted:
        return "sent"
    try:
        endpoint.edit(remote_id, text)
    except NotImplementedError:
        return "sent"
    except TransientShareError as exc:
        age = utcnow() - newest
        if age > EDIT_GIVE_UP:
            log.warning("%s: share %s: gave up editing the story's post: %s", config.name, share_id, exc)
            return "sent"
        wait = min(max(age.total_seconds() / 2, EDIT_RETRY), SETTLE_MAX_WAIT)
        raise Deferred(wait, f"editing the story's post: {exc}") from None
    except ShareError as exc:
        log.warning("%s: share %s: the story's post was not edited: %s", config.name, share_id, exc)
        return "sent"
    with rt.session() as session:
        session.execute(
            update(Share)
            .where(Share.id == share_id, Share.status == "sent")
            .values(text=text)
            .execution_options(synchronize_session=False)
        )
    log.info(
        "%s: share %s: the story's post now names %d other versions", config.name, share_id, len(mentions)
    )
    return "sent"


def _source_title(config: Config, article: Article) -> str:
    """The display name of ``article``'s source (its ``title``, else its name)."""
    try:
        return config.source(article.source.name).title or article.source.name
    except KeyError:
        return article.source.name


# ---------------------------------------------------------------- settling uncertain shares

# An uncertain share of a network that can look posts up is looked up again first after this many
# seconds, then after half its age each time (at most SETTLE_MAX_WAIT): a slow network's post shows
# up within seconds, a lost one is proven absent after ABSENT_AFTER, and nothing polls every second.
SETTLE_FIRST_CHECK = 2.0
SETTLE_MAX_WAIT = 3600.0
# A lookup that does not find the post proves it absent only this long after the claim (at least
# twice the request's whole-exchange deadline): until then the request we gave up on may still be
# processed by the network.
ABSENT_AFTER = 60.0
# Beat's pass over uncertain shares whose scheduled check was lost (a flushed Redis, a dead worker).
SETTLE_INTERVAL = 60.0
SETTLING_NOTE = "no answer in time; looking the post up automatically"
OPERATOR_NOTE = "needs an operator"


def absent_after(endpoint: Endpoint) -> float:
    """Seconds after its claim when a lookup that finds nothing proves a share's post absent."""
    return max(ABSENT_AFTER, 2 * DEADLINE_FACTOR * endpoint.timeout)


def settle_share(rt: Runtime, share_id: int) -> str:
    """Look an ``uncertain`` share's post up on its network; return the share's status afterwards.

    Found: ``sent`` with its remote id and URL. Not found once :func:`absent_after` has passed since
    the claim: back to ``pending`` (the caller delivers it; the idempotency key still applies).
    Otherwise the next look is scheduled (``not_before``) and :class:`Deferred` is raised. A network
    without a lookup leaves the share ``uncertain`` for an operator.
    """
    now = utcnow()
    with rt.session() as session:
        share = session.get(Share, share_id, options=[joinedload(Share.article).joinedload(Article.source)])
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        if share.status != "uncertain":
            return share.status
        name, claimed, not_before = share.endpoint, share.claimed_at or share.created_at, share.not_before
        view = share_article_view(share.article)
    try:
        config = rt.config.endpoint(name)
    except KeyError:
        return "uncertain"
    endpoint = rt.endpoint(name)
    if not endpoint.can_look_up:
        return "uncertain"
    if not_before is not None and not_before > now:
        raise Deferred((not_before - now).total_seconds(), "the next lookup of an uncertain post")
    try:
        preview = endpoint.render(view)
        found = endpoint.lookup(preview, idempotency_key(view, config.name))
    except NotImplementedError:
        return "uncertain"
    except ShareError as exc:
        log.info("%s: share %s: lookup failed, trying again later: %s", name, share_id, exc)
        found, failed = None, True
    else:
        failed = False
    if found is not None:
        log.info("%s: share %s: the post was there after all (%s)", name, share_id, found.remote_id)
        return _sent(rt, share_id, endpoint, found, preview.text)
    age = (now - claimed).total_seconds()
    if not failed and age >= absent_after(endpoint):
        log.info("%s: share %s: the post is not on the network; sending it again", name, share_id)
        _finish(
            rt,
            share_id,
            status="pending",
            not_before=None,
            error="looked up after a lost answer: not on the network; sending again",
        )
        return "pending"
    wait = min(max(age / 2, SETTLE_FIRST_CHECK), SETTLE_MAX_WAIT)
    with rt.session() as session:  # only the next look: no new outcome to count or report
        session.execute(
            update(Share)
            .where(Share.id == share_id, Share.status == "uncertain")
            .values(not_before=now + timedelta(seconds=wait))
            .execution_options(synchronize_session=False)
        )
    raise Deferred(wait, "the post is not visible yet; looking again")


def due_uncertain(rt: Runtime) -> list[int]:
    """Uncertain shares of networks that can look posts up whose lookup is overdue (its message lost)."""
    kinds = {name for name, cls in ENDPOINTS.items() if cls.can_look_up}
    names = [e.name for e in rt.config.endpoints if e.kind in kinds]
    if not names:
        return []
    overdue = utcnow() - timedelta(seconds=SETTLE_INTERVAL)
    with rt.session() as session:
        return list(
            session.scalars(
                select(Share.id)
                .where(
                    Share.status == "uncertain",
                    Share.endpoint.in_(names),
                    (Share.not_before.is_(None)) | (Share.not_before < overdue),
                )
                .order_by(Share.id)
                .limit(500)
            )
        )


def settle_beat_entry() -> dict[str, Any]:
    """Beat's entry for :func:`due_uncertain`: every :data:`SETTLE_INTERVAL` seconds."""
    return {
        "task": "syndicate.settle_uncertain",
        "schedule": SETTLE_INTERVAL,
        "options": {"expires": SETTLE_INTERVAL},
    }


def _attempts(rt: Runtime, share_id: int) -> int:
    with rt.session() as session:
        share = session.get(Share, share_id)
        return share.attempts if share is not None else 1


def _sent(rt: Runtime, share_id: int, endpoint: Endpoint, result: ShareResult, text: str) -> str:
    if endpoint.quota_wait:
        rt.pacer.block(endpoint.name, endpoint.quota_wait)
    error = "the network already had this post (duplicate answer)" if result.duplicate else None
    return _finish(
        rt,
        share_id,
        status="sent",
        remote_id=result.remote_id,
        remote_url=result.remote_url,
        sent_at=utcnow(),
        text=text,
        error=error,
    )


def mark_share_failed(rt: Runtime, share_id: int, exc: BaseException) -> None:
    """Record a final failure on a share (its task gave up or crashed outside the request)."""
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is not None and share.status == "pending":
            share.status, share.error = "failed", _short(f"{type(exc).__name__}: {exc}")


def mark_sent(rt: Runtime, share_id: int, remote_url: str | None = None) -> bool:
    """Record that an uncertain share did reach the network (an operator checked)."""
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is None or share.status not in ("uncertain", "failed", "pending"):
            return False
        share.status, share.sent_at = "sent", utcnow()
        share.remote_url = remote_url or share.remote_url
        share.error = "marked sent by an operator"
        return True


def stale_shares(rt: Runtime, older_than: timedelta) -> list[int]:
    """Shares a sweep may have to deliver again: due and pending for ``older_than``, or claimed and dead.

    Pending shares count once created ``older_than`` ago and due (``not_before`` passed); ``sending``
    ones once their claim is older than the claim lease (no live task can hold it). Shares of an
    endpoint an operator or a permanent error disabled are held on purpose and left out.
    """
    now = utcnow()
    cutoff = now - older_than
    lease_cutoff = now - timedelta(seconds=rt.claim_lease)
    # Younger claims count too once their sending lease is gone (see SendingLeases).
    young_cutoff = now - timedelta(seconds=SENDING_TTL) if rt.redis_client is not None else lease_cutoff
    disabled = select(EndpointRow.name).where(EndpointRow.disabled_at.is_not(None))
    with rt.session() as session:
        rows = session.execute(
            select(Share.id, Share.status, Share.claimed_at)
            .where(
                (
                    (Share.status == "pending")
                    & (Share.created_at < cutoff)
                    & ((Share.not_before.is_(None)) | (Share.not_before <= now))
                )
                | ((Share.status == "sending") & (Share.claimed_at < young_cutoff)),
                Share.endpoint.not_in(disabled),
            )
            .order_by(Share.id)
            .limit(500)
        ).all()
    young = [row.id for row in rows if row.status == "sending" and row.claimed_at >= lease_cutoff]
    alive = rt.sending_leases.alive(young) if young else set()
    held = set(young) if alive is None else alive
    return [row.id for row in rows if row.id not in held]


def recent_shares(
    session: Session, *, endpoint: str | None = None, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The latest shares (newest first) with where each post landed and why one failed."""
    query = select(Share).join(Article).order_by(Share.id.desc()).limit(limit)
    if endpoint:
        query = query.where(Share.endpoint == endpoint)
    if status:
        query = query.where(Share.status == status)
    out = []
    for share in session.scalars(query):
        out.append(
            {
                "id": share.id,
                "article_id": share.article_id,
                "title": share.article.title or share.article.canonical_url,
                "endpoint": share.endpoint,
                "status": share.status,
                "attempts": share.attempts,
                "remote_id": share.remote_id,
                "remote_url": share.remote_url,
                "error": share.error,
                "sent_at": share.sent_at.isoformat() if share.sent_at else None,
                "not_before": share.not_before.isoformat() if share.not_before else None,
            }
        )
    return out


def find_article(session: Session, ref: str) -> Article | None:
    """The article with id ``ref`` or with ``ref`` as its URL."""
    if ref.isdigit():
        return session.get(Article, int(ref))
    return session.scalar(select(Article).where((Article.canonical_url == ref) | (Article.url == ref)))


def preview_article(rt: Runtime, ref: str, endpoint_name: str | None = None) -> list[dict[str, Any]]:
    """What each endpoint (or just ``endpoint_name``) would receive for article ``ref``; nothing is sent."""
    with rt.session() as session:
        article = find_article(session, ref)
        if article is None:
            raise LookupError(f"no article {ref!r}")
        view = share_article_view(article)
        rows = sync_endpoints(session, rt.config)
        now = utcnow()
        notes: dict[str, str | None] = {}
        for endpoint in rt.config.endpoints:
            if not routes(rt.config, endpoint, article):
                notes[endpoint.name] = SKIP_REASONS["routing"]
            elif (reason := back_catalogue_reason(endpoint, rows[endpoint.name], article, now)) is not None:
                notes[endpoint.name] = f"{SKIP_REASONS[reason]}: not shared unless sent on purpose"
            else:
                notes[endpoint.name] = None
    out = []
    for endpoint in rt.config.endpoints:
        if endpoint_name is not None and endpoint.name != endpoint_name:
            continue
        ep = rt.endpoint(endpoint.name)
        entry: dict[str, Any] = {
            "endpoint": endpoint.name,
            "kind": endpoint.kind,
            "note": notes[endpoint.name],
        }
        unset = [m.variable for m in rt.config.missing_secrets_of(endpoint.name)]
        if unset:  # read without secrets: it renders, but could not send
            why = f"not configured: {', '.join(unset)} not set"
            entry["note"] = f"{why}; {entry['note']}" if entry["note"] else why
        try:
            preview = ep.render(view)
        except ShareError as exc:
            entry["error"] = str(exc)
        else:
            entry.update(
                text=preview.text,
                length=ep.text_length(preview.text),
                limit=ep.text_limit(),
                image=preview.image,
                payload=preview.payload,
            )
        out.append(entry)
    if endpoint_name is not None and not out:
        raise LookupError(f"no endpoint named {endpoint_name!r}")
    return out


__all__ = [
    "SKIP_REASONS",
    "STATUSES",
    "DatabaseTokenStore",
    "Deferred",
    "Pacer",
    "back_catalogue_reason",
    "deliver_share",
    "due_uncertain",
    "find_article",
    "mark_sent",
    "mark_share_failed",
    "plan_shares",
    "preview_article",
    "recent_shares",
    "routes",
    "set_endpoint_enabled",
    "settle_share",
    "share_article_view",
    "skipped_counts",
    "stale_shares",
    "sync_endpoints",
]
