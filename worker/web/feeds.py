"""Feed routes: a feed's current render, its RFC 5005 archive pages, the OPML list and the XSL stylesheet."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response

from feeds import stylesheet
from feeds.http import cache_headers, is_not_modified
from feeds.opml import CONTENT_TYPE as OPML_TYPE
from feeds.opml import FeedLink, discovery_links, render_opml
from worker import metrics
from worker.render import OPML_PATH, STYLESHEET_PATH, render_archive
from worker.web.auth import RT
from worker.web.middleware import FEED_FORMATS, feed_cache, request_validators


def feed_links(config: Any, base_url: str) -> list[Any]:
    """Every configured feed as a :class:`feeds.opml.FeedLink` (title and URL without ``.fmt``)."""
    return [
        FeedLink(
            title=f.title,
            url_base=f"{base_url}/feeds/{f.name}",
            home_url=config.site_link(f, base_url),
            description=f.description,
        )
        for f in config.feeds
    ]


def autodiscovery_links(config: Any, base_url: str) -> str:
    """The ``<link rel="alternate">`` tags (every feed, every format, plus the OPML list) for a page head."""
    return discovery_links(feed_links(config, base_url), base_url + OPML_PATH)


def add_feed_routes(app: FastAPI) -> None:
    """A feed's render, ``/feeds.opml``, the feeds' XSL stylesheet and the RFC 5005 archive pages."""

    # One route per method: a two-method api_route gives both operations the same OpenAPI id.
    @app.get("/feeds/{name}.{fmt}")
    @app.head("/feeds/{name}.{fmt}", operation_id="feed_head")
    def feed(name: str, fmt: str, request: Request) -> Response:
        """A stored feed render with ETag/Last-Modified, 304, gzip/brotli and WebSub ``Link`` headers.

        Hits are answered by :class:`~worker.web.middleware.FeedFastPath` before routing; this route
        documents the path and explains misses (and answers a hit that raced in after the fast path
        looked).
        """
        if fmt not in FEED_FORMATS:
            raise HTTPException(404, f"unknown feed format {fmt!r}; use rss, atom or json")
        entry = feed_cache(request.app).get(name, fmt)
        if entry is None:
            raise HTTPException(404, f"no feed named {name!r} has been rendered")
        encoding, inm, ims, accept = request_validators(request.scope)
        status, headers, body = entry.answer(encoding, inm, ims, request.method == "HEAD", accept)
        metrics.count_feed_request(entry.name, status, feed_cache(request.app).client)
        response = Response(content=body, status_code=status)
        response.raw_headers = list(headers)
        return response

    @app.get(OPML_PATH)
    def opml(r: RT) -> Response:
        """An OPML 2.0 list of every configured feed (one outline each, its RSS URL)."""
        base = r.settings.base_url
        body = render_opml("Syndicate feeds", feed_links(r.config, base))
        return Response(content=body, media_type=OPML_TYPE)

    @app.get(STYLESHEET_PATH)
    def feed_stylesheet() -> Response:
        """The XSL that makes a feed opened in a browser read as a page."""
        return Response(
            content=stylesheet.STYLESHEET.encode("utf-8"),
            media_type=stylesheet.CONTENT_TYPE,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/feeds/{name}/archive/{page}.{fmt}")
    @app.head("/feeds/{name}/archive/{page}.{fmt}", operation_id="feed_archive_head")
    def feed_archive(name: str, page: int, fmt: str, request: Request, r: RT) -> Response:
        """A full RFC 5005 archive page of a feed (1 = oldest); its items never change."""
        if fmt not in FEED_FORMATS:
            raise HTTPException(404, f"unknown feed format {fmt!r}; use rss, atom or json")
        out = render_archive(r, name, page, fmt)
        if out is None:
            raise HTTPException(404, f"feed {name!r} has no archive page {page}")
        headers = cache_headers(out.etag, out.last_modified)
        if is_not_modified(request.headers, out.etag, out.last_modified):
            return Response(status_code=304, headers=headers)
        return Response(content=out.body, media_type=out.content_type, headers=headers)
