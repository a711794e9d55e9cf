"""The render stage: a feed's current document and archive pages, built from the stored articles.

A render stores the bytes of every format in ``feed_renders`` when they changed; :mod:`worker.feedcache`
publishes them to the web processes and the export directory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import FeedConfig
from feeds.build import FeedItem, FeedMeta, RenderedFeed, build_feed, render_all, tag_authority
from worker import feedcache, metrics, redisclient
from worker.errors import FeedExportError
from worker.runtime import Runtime
from worker.store.models import FeedRender, utcnow
from worker.store.queries import (
    archive_count,
    archive_items,
    archive_page_size,
    archive_slice,
    feed_items,
    story_feeds,
)

log = logging.getLogger(__name__)

# The first change renders at once; later ones within this window share one render at its end.
RENDER_WINDOW_SECONDS = 0.25
# Longer than any wait in the queue before the trailing render starts, short enough to be no lock.
RENDER_TRAILING_TTL = RENDER_WINDOW_SECONDS + 5.0
# Under a burst a feed renders once per window (a render that starts outside a window opens one:
# see begin_render), and the window grows to this many times the feed's last render time (kept in
# Redis), so renders that got slow (a large archive, a busy machine) cannot take over the workers:
# measured by bench/scaleout.py, where renders of 0.25 s every 0.125 s took more task time than every
# other stage together. A quiet feed still renders at once.
RENDER_COST_FACTOR = 4.0
RENDER_WINDOW_MAX = 10.0

STYLESHEET_PATH = "/feeds.xsl"
OPML_PATH = "/feeds.opml"


def feeds_of_story(rt: Runtime, story_id: int) -> list[str]:
    """:func:`story_feeds` in a session of its own (for the story assignment, the CLI and the API)."""
    with rt.session() as session:
        return story_feeds(session, rt.config, story_id)


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
    items = archive_items(session, feed, wanted, rt.config, authority)
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


def render_current(rt: Runtime, feed_name: str) -> bool:
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


# ---------------------------------------------------------------- debounce


def _render_keys(feed_name: str) -> tuple[str, str]:
    return f"syndicate:render-window:{feed_name}", f"syndicate:render-trailing:{feed_name}"


def _render_cost_key(feed_name: str) -> str:
    return f"syndicate:render-seconds:{feed_name}"


def begin_render(feed_name: str, client: redis.Redis, task_id: str | None) -> bool:
    """Mark the render ``task_id`` of ``feed_name`` as started; True if it opened a debounce window."""
    window, trailing = _render_keys(feed_name)
    opened = client.eval(
        redisclient.BEGIN_RENDER,
        3,
        window,
        trailing,
        _render_cost_key(feed_name),
        RENDER_WINDOW_SECONDS,
        RENDER_COST_FACTOR,
        RENDER_WINDOW_MAX,
        task_id or "",
    )
    return bool(opened)


# What :func:`debounce` answers: nothing to do, render now, or render at the window's end.
RENDER_SKIP, RENDER_NOW, RENDER_LATER = 0, 1, 2


def debounce(feed_name: str, client: redis.Redis, trailing_id: str) -> tuple[int, float]:
    """When a change of ``feed_name`` renders it, as ``(action, countdown)``: at once, bursts collapsed.

    The first change of a quiet feed renders immediately (leading edge) and opens a window of
    :data:`RENDER_WINDOW_SECONDS` (longer for a slow feed, see :data:`RENDER_COST_FACTOR`); changes
    inside the window schedule one more render at its end (trailing edge), which they all share.
    Nothing is lost: the trailing render clears its key before it reads the articles, so a change
    committed after that read schedules a new render; while it is still pending, it covers every
    change (other renders leave its key alone, see :func:`begin_render`).

    Both keys expire on their own (the window after itself, the trailing key shortly after its
    render was due), so a render killed with its worker cannot hold the debounce state: the next
    change after :data:`RENDER_TRAILING_TTL` renders again even if the lost task never comes back.

    ``action`` is :data:`RENDER_NOW`, :data:`RENDER_LATER` (the caller sends that render with task id
    ``trailing_id`` after ``countdown``) or :data:`RENDER_SKIP` (a pending render covers the change).
    """
    window, trailing = _render_keys(feed_name)
    action, span_ms = client.eval(
        redisclient.SCHEDULE_RENDER,
        3,
        window,
        trailing,
        _render_cost_key(feed_name),
        RENDER_WINDOW_SECONDS,
        RENDER_COST_FACTOR,
        RENDER_WINDOW_MAX,
        RENDER_TRAILING_TTL - RENDER_WINDOW_SECONDS,
        trailing_id,
    )
    return int(action), int(span_ms) / 1000


def record_render_time(feed_name: str, client: redis.Redis, seconds: float) -> None:
    """Keep how long the feed's last render took: :func:`debounce` widens the window of slow feeds."""
    client.set(_render_cost_key(feed_name), f"{seconds:.3f}", ex=3600)


def render_and_publish(rt: Runtime, feed_name: str, client: redis.Redis) -> bool:
    """Render ``feed_name``; publish it to the web processes and the export directory if it changed.

    Also publishes an unchanged render that Redis or the export directory does not hold yet (a
    flushed Redis, the first render done by ``syndicate up``, an export that failed before), so what
    is served never waits for the next change. A failed export raises
    :class:`~worker.errors.FeedExportError`, which the task retries. Returns whether the feed's bytes
    changed (the reason to ping the WebSub hub).
    """
    changed = bool(metrics.timed_render(render_current, rt, feed_name))
    try:
        feedcache.publish_feed(rt, feed_name, client, force=changed)
    except FeedExportError:
        metrics.count_export_failure(feed_name)
        raise
    return changed
