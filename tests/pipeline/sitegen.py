"""A small editable news site for crawl tests, served by :class:`HTTPTestServer` with validators.

Pages are generated (so a test can add or edit a story between crawls) and every answer carries an
ETag from its body; a request whose If-None-Match matches gets a bare 304, as real sites do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from html import escape

from tests.support.httpserver import HTTPTestServer, Request, Response
from tests.support.storygen import Event


@dataclass
class Story:
    """One article page of the site."""

    slug: str
    title: str
    body: str = "The council met on Tuesday and agreed the plan after a long debate about its cost."
    published: str | None = "2024-05-03T08:00:00+00:00"
    lastmod: str = "2024-05-03T08:00:00+00:00"
    # A generated write-up's own paragraphs and language (see :meth:`of`); without them the page
    # repeats ``body``, which makes every such page a near copy of the others.
    paragraphs: tuple[str, ...] = ()
    language: str = "en"

    @classmethod
    def of(cls, event: Event, variant: int, slug: str) -> Story:
        """Write-up ``variant`` of a generated ``event`` (tests/support/storygen.py) as a page."""
        title, paragraphs, language, published = event.write_up(variant)
        when = published.isoformat()
        return cls(slug, title, published=when, lastmod=when, paragraphs=tuple(paragraphs), language=language)

    @property
    def path(self) -> str:
        """The story's path on the site."""
        return f"/news/{self.slug}.html"

    def html(self) -> str:
        """The story's page."""
        meta = (
            f'<meta property="article:published_time" content="{self.published}">' if self.published else ""
        )
        if self.paragraphs:
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in self.paragraphs)
        else:
            paragraphs = "".join(f"<p>{escape(self.body)} Paragraph {i} of the report.</p>" for i in range(6))
        return (
            f"<!doctype html><html lang='{self.language}'><head><meta charset='utf-8'>"
            f"<title>{escape(self.title)}</title>"
            f"{meta}</head><body><article><h1>{escape(self.title)}</h1>{paragraphs}</article></body></html>"
        )


@dataclass
class NewsSite:
    """Stories newest first, listed ``per_page`` per listing page, plus sitemaps and a feed.

    ``pagination`` is how a listing page links to the next: ``"rel"`` (``<a rel="next">``),
    ``"wordpress"`` (WordPress core's ``paginate_links()``: numbered links and ``<a class="next
    page-numbers">``, no rel) or ``"older-posts"`` (a theme's "Older posts" link in ``.nav-previous``).
    ``loop`` makes the last page's next link point back to the first.
    """

    server: HTTPTestServer
    stories: list[Story] = field(default_factory=list)
    per_page: int = 2
    extra: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    pagination: str = "rel"
    loop: bool = False

    def __post_init__(self) -> None:
        self.install()

    def install(self) -> None:
        """(Re)register every path; call after adding stories."""
        for path in self.paths():
            self.server.route(path, self._answer)

    def paths(self) -> list[str]:
        """Every path the site serves."""
        pages = [self.page_path(n) for n in range(1, self.page_count() + 1)]
        return [*pages, *(s.path for s in self.stories), "/sitemap.xml", "/feed.rss", *self.extra]

    def page_count(self) -> int:
        """How many listing pages there are."""
        return max(1, -(-len(self.stories) // self.per_page))

    @staticmethod
    def page_path(number: int) -> str:
        """The path of listing page ``number``."""
        return "/news/" if number == 1 else f"/news/page/{number}/"

    def add(self, story: Story) -> Story:
        """Publish ``story`` at the top of the listing."""
        self.stories.insert(0, story)
        self.install()
        return story

    def document(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type of ``path``."""
        if path in self.extra:
            return self.extra[path]
        for number in range(1, self.page_count() + 1):
            if path == self.page_path(number):
                return self._listing(number).encode(), "text/html; charset=utf-8"
        for story in self.stories:
            if path == story.path:
                return story.html().encode(), "text/html; charset=utf-8"
        if path == "/sitemap.xml":
            return self._sitemap().encode(), "application/xml"
        if path == "/feed.rss":
            return self._feed().encode(), "application/rss+xml"
        return None

    def _answer(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        found = self.document(path)
        if found is None:
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        body, content_type = found
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if request.header("If-None-Match") == etag:
            return Response(304, b"", {"ETag": etag})
        return Response(200, body, {"Content-Type": content_type, "ETag": etag})

    def _listing(self, number: int) -> str:
        chunk = self.stories[(number - 1) * self.per_page : number * self.per_page]
        links = "".join(f'<li><h2><a href="{s.path}">{escape(s.title)}</a></h2></li>' for s in chunk)
        last = self.page_count()
        following = number + 1 if number < last else 1 if self.loop else None
        nxt = ""
        if following is not None and self.pagination == "rel":
            nxt = f'<a rel="next" href="{self.page_path(following)}">Older</a>'
        elif self.pagination == "wordpress":
            numbers = "".join(
                f'<span aria-current="page" class="page-numbers current">{n}</span>'
                if n == number
                else f'<a class="page-numbers" href="{self.page_path(n)}">{n}</a>'
                for n in range(1, last + 1)
            )
            if number > 1:
                numbers = (
                    f'<a class="prev page-numbers" href="{self.page_path(number - 1)}">« Previous</a>'
                    + numbers
                )
            if following is not None:
                numbers += f'<a class="next page-numbers" href="{self.page_path(following)}">Next »</a>'
            nxt = (
                f'<h2 class="screen-reader-text">Posts navigation</h2><div class="nav-links">{numbers}</div>'
            )
        elif following is not None and self.pagination == "older-posts":
            nxt = f'<div class="nav-previous"><a href="{self.page_path(following)}">Older posts</a></div>'
        return (
            "<!doctype html><html><head><title>News</title></head><body><main><ul>"
            f"{links}</ul></main><nav class='navigation pagination' aria-label='Posts'>{nxt}</nav>"
            "</body></html>"
        )

    def _sitemap(self) -> str:
        base = self.server.base_url
        urls = "".join(
            f"<url><loc>{base}{s.path}</loc><lastmod>{s.lastmod}</lastmod></url>" for s in self.stories
        )
        return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'

    def _feed(self) -> str:
        base = self.server.base_url
        items = "".join(
            f"<item><title>{escape(s.title)}</title><link>{base}{s.path}</link>"
            f"<pubDate>Fri, 03 May 2024 08:00:00 GMT</pubDate><description>Feed summary of {escape(s.title)}"
            "</description></item>"
            for s in self.stories
        )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
            f"<link>{base}/</link><description>d</description>{items}</channel></rss>"
        )
