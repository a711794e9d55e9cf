"""The render stage: a feed's current document and archive pages, built from the stored articles.

A render stores the bytes of every format in ``feed_renders`` when they changed; :mod:`worker.feedcache`
publishes them to the web processes and the export directory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import FeedConfig
from feeds.build import FeedItem, FeedMeta, RenderedFeed, render_all, tag_authority
from feeds.build import render_feed as build_feed
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
