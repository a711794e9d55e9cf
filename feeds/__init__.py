"""Feed building (RSS 2.0, Atom, JSON Feed) and feed serving logic. Pure: no Celery, no database."""

from feeds.build import FORMATS, FeedItem, FeedMeta, RenderedFeed, build_feed, render_all
from feeds.http import cache_headers, is_not_modified
from feeds.websub import WebSubError, publish

__all__ = [
    "FORMATS",
    "FeedItem",
    "FeedMeta",
    "RenderedFeed",
    "WebSubError",
    "build_feed",
    "cache_headers",
    "is_not_modified",
    "publish",
    "render_all",
]
