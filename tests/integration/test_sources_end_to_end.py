"""Every source kind end to end through real Celery workers on a real Redis, read from the sites' own logs.

One deployment serves the whole module: TWO ``syndicate worker`` processes (``--concurrency 2``
each) and ``syndicate web`` on one real Redis and one SQLite database; crawls are enqueued with
``syndicate crawl``, pushes go through ``POST /api/articles``. Each source kind has its own site on
127.0.0.1 (a generated site answering 304 to a matching ``If-None-Match``) whose request log, with
arrival times and the status answered, is what the tests assert on:

- listing (three pages), sitemap (an index and two children), feed (Atom, full text fetched from
  each link), page, push: every article ends ``ready``; an unchanged re-crawl (re-push) sends only
  conditional requests, answered 304, and fetches no article again; an edited article (new ETag)
  announced by its source is fetched conditionally and updated in place, not duplicated. A listing
  announces no edits (it carries no dates), so for it the test checks that a re-crawl after a new
  story takes only the new story and duplicates nothing.
- robots.txt: a ``Disallow``ed article is never requested and shows as ``skipped`` with the reason
  in ``syndicate status --json``.
- ``Crawl-delay: 0.3`` holds between every two requests to that host from the four worker
  processes, and every article still ends ``ready``: HostBusy reschedules the task, no Celery
  retry is used and no article fails.

A task is known to be finished from the worker's own log line ``Task ... succeeded ...: <result>``
(a crawl returns how many articles it enqueued, so the test waits for exactly those), never from a
sleep.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.pipeline.sitegen import NewsSite, Story
from tests.support.httpserver import HTTPTestServer, Request, Response
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.store.db import get_engine
from worker.store.models import Article, Source

# One module-wide rig: its tests stay in one test process (bootstrap.py test runs --dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("test_sources_end_to_end")]

REDIS_DB = 12  # other tests use 1-5, 7-11
TOKEN = "sources-e2e-token"
CRAWL_DELAY = 0.3
WAIT = 45.0
WORKERS = ("worker-one", "worker-two")


def _messages(text: str) -> str:
    """The log's messages, one per line: the worker writes JSON lines when its output is not a terminal."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                line = str(json.loads(line).get("message", ""))
            except ValueError:
                pass
        lines.append(line)
    return "\n".join(lines)


_SUCCEEDED = re.compile(r"Task syndicate\.(\w+)\[[^\]]+\] succeeded in [0-9.e-]+s: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Exchange:
    """One request a site answered: when it arrived, what it asked for and what it got."""

    at: float
    path: str
    status: int
    if_none_match: str | None


class LoggedServer(HTTPTestServer):
    """An :class:`HTTPTestServer` (routes only) that logs arrival time and answered status per request."""

    def __init__(self) -> None:
        """Serve routes only, with an empty log."""
        super().__init__(root=None)
        self.log: list[Exchange] = []

    def _answer(self, request: Request) -> Response:
        arrived = time.time()
        response = super()._answer(request)
        exchange = Exchange(arrived, request.path, response.status, request.header("If-None-Match"))
        with self._lock:
            self.log.append(exchange)
        return response

    def take(self, robots: bool = False) -> list[Exchange]:
        """The exchanges since the last call, in arrival order (``/robots.txt`` only if ``robots``)."""
        with self._lock:
            taken, self.log = self.log, []
        return sorted((e for e in taken if robots or e.path != "/robots.txt"), key=lambda e: e.at)


def _site(stories: list[Story], per_page: int = 2, **extra: tuple[bytes, str]) -> NewsSite:
    server = LoggedServer().start()
    site = NewsSite(server, per_page=per_page, extra=dict(extra))
    for story in reversed(stories):
        site.add(story)
    return site


def _stories(prefix: str, count: int) -> list[Story]:
    """``count`` stories, newest first, each dated an hour after the one below it."""
    return [
        Story(
            f"{prefix}-story-number-{n}",
            f"{prefix.title()} story number {n} about the town",
            lastmod=f"2024-05-03T{n:02d}:00:00+00:00",
        )
        for n in range(count, 0, -1)
    ]


def _sitemaps(site: NewsSite) -> None:
    """An index of two child sitemaps: the three newest stories and the rest, each with its lastmod."""
    base = site.server.base_url
    recent, older = site.stories[:3], site.stories[3:]

    def urlset(stories: list[Story]) -> bytes:
        urls = "".join(f"<url><loc>{base}{s.path}</loc><lastmod>{s.lastmod}</lastmod></url>" for s in stories)
        return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()

    children = [("/sitemaps/recent.xml", recent), ("/sitemaps/older.xml", older)]
    index = "".join(
        f"<sitemap><loc>{base}{path}</loc><lastmod>{max(s.lastmod for s in stories)}</lastmod></sitemap>"
        for path, stories in children
    )
    site.extra["/sitemap_index.xml"] = (
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{index}</sitemapindex>'.encode(),
        "application/xml",
    )
    for path, stories in children:
        site.extra[path] = (urlset(stories), "application/xml")
    site.install()


def _atom(site: NewsSite) -> None:
    """An Atom feed of every story: title, link, dates and a one-line summary (not the full text)."""
    base = site.server.base_url
    entries = "".join(
        f"<entry><id>{base}{s.path}</id><title>{s.title}</title><link href='{base}{s.path}'/>"
        f"<published>2024-05-03T00:30:00Z</published><updated>{s.lastmod}</updated>"
        f"<summary>Feed summary of {s.title}</summary></entry>"
        for s in site.stories
    )
    feed = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{base}/feed.atom</id><title>Town</title><updated>2024-05-03T10:00:00Z</updated>"
        f"{entries}</feed>"
    )
    site.extra["/feed.atom"] = (feed.encode(), "application/atom+xml")
    site.install()


@dataclass
class Deployment:
    """The running processes, the sites, and ways to act on them and wait for the result."""

    syn: Syndicate
    sites: dict[str, NewsSite]
    database_url: str
    web: str

    def server(self, name: str) -> LoggedServer:
        """The logged server of site ``name``."""
        server = self.sites[name].server
        assert isinstance(server, LoggedServer)
        return server

    def results(self, task: str, worker: str | None = None) -> list[str]:
        """Return values of every finished run of ``task`` (``None``: rescheduled, not finished)."""
        found = []
        for name in (worker,) if worker else WORKERS:
            path = self.syn.cwd / f"{name}.log"
            text = path.read_text(errors="replace", encoding="utf-8") if path.exists() else ""
            found += [
                value
                for kind, value in _SUCCEEDED.findall(_messages(text))
                if kind == task and value != "None"
            ]
        return found

    def wait(self, what: str, done: Callable[[], bool]) -> None:
        """Poll ``done`` until true; fail with the processes' logs if it never is."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}\n{self.syn.logs()}")

    def _marks(self, task: str) -> dict[str, int]:
        return {w: len(self.results(task, w)) for w in WORKERS}

    def _new(self, task: str, marks: dict[str, int]) -> list[str]:
        return [v for w in WORKERS for v in self.results(task, w)[marks[w] :]]

    def crawl(self, source: str) -> int:
        """``syndicate crawl source``; wait for the crawl and every article it enqueued. Their count."""
        crawls, processed = self._marks("crawl_source"), len(self.results("process_article"))
        enqueued = self.syn.run("crawl", source, timeout=60)
        assert enqueued.returncode == 0, enqueued.stderr
        self.wait(f"the crawl of {source}", lambda: bool(self._new("crawl_source", crawls)))
        # Only one crawl runs at a time here, so the one new result is this crawl's.
        [count] = [int(v) for v in self._new("crawl_source", crawls)]
        self.wait(
            f"{count} article(s) of {source}",
            lambda: len(self.results("process_article")) >= processed + count,
        )
        return count

    def push(self, url: str) -> dict[str, Any]:
        """``POST /api/articles`` with a URL only; wait until a worker processed it. The answer."""
        processed = len(self.results("process_article"))
        resp = requests.post(
            f"{self.web}/api/articles",
            json={"url": url},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        self.wait(f"the push of {url}", lambda: len(self.results("process_article")) > processed)
        return dict(resp.json())

    def articles(self, source: str) -> dict[str, Article]:
        """The stored articles of ``source`` by path (``/news/...``)."""
        with Session(get_engine(self.database_url)) as session:
            rows = session.scalars(select(Article).join(Source).where(Source.name == source)).all()
            session.expunge_all()
        return {urlsplit(row.url).path: row for row in rows}

    def status(self) -> dict[str, Any]:
        """``syndicate status --json``."""
        shown = self.syn.run("status", "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Deployment]:
    """Two workers and the web app on one Redis and one database, with one site per source kind."""
    tmp = tmp_path_factory.mktemp("sources-e2e")
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    watched = Story("watched-page-story", "The watched page about the harbour")
    private = Story("private-council-minutes", "Private council minutes", lastmod="2024-05-03T05:00:00+00:00")
    sites = {
        "listing": _site(_stories("listing", 5)),
        "sitemap": _site(_stories("sitemap", 5)),
        "feed": _site(_stories("feed", 4)),
        "page": _site([watched]),
        "push": _site(_stories("push", 2)),
        "guarded": _site(
            [*_stories("guarded", 2), private],
            per_page=5,
            **{"/robots.txt": (b"User-agent: *\nDisallow: /news/private-\n", "text/plain")},
        ),
        "polite": _site(
            _stories("polite", 8),
            per_page=4,
            **{"/robots.txt": (b"User-agent: *\nCrawl-delay: %.1f\n" % CRAWL_DELAY, "text/plain")},
        ),
    }
    _sitemaps(sites["sitemap"])
    sites["feed"].stories[1].published = None  # this page has no date: the feed's is kept
    _atom(sites["feed"])
    urls = {
        "listing": sites["listing"].server.url("/news/"),
        "sitemap": sites["sitemap"].server.url("/sitemap_index.xml"),
        "feed": sites["feed"].server.url("/feed.atom"),
        "page": sites["page"].server.url(watched.path),
        "guarded": sites["guarded"].server.url("/news/"),
        "polite": sites["polite"].server.url("/news/"),
    }
    allow = ", ".join(f'"{s.server.host_port}"' for s in sites.values())
    sources = "".join(
        f'  - {{name: {name}, kind: {"listing" if name in ("guarded", "polite") else name}, url: "{url}",'
        " schedule: 1d}\n"
        for name, url in urls.items()
    )
    (tmp / "syndicate.yaml").write_text(
        f'api: {{token: "${{SOURCES_API_TOKEN}}"}}\n'
        f"fetch: {{allow_hosts: [{allow}], timeout: 5s}}\n"
        f"sources:\n{sources}"
        "feeds: [{name: all, title: All}]\n",
        encoding="utf-8",
    )
    port = free_port()
    database_url = f"sqlite:///{tmp / 'syndicate.db'}"
    syn = Syndicate.make(
        tmp,
        {
            "SYNDICATE_CONFIG": str(tmp / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_VAR_DIR": str(tmp / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "SOURCES_API_TOKEN": TOKEN,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    try:
        for name in WORKERS:
            syn.start(name, "worker", "--concurrency", "2", "--hostname", f"{name}@%h")
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        deployment = Deployment(syn, sites, database_url, f"http://127.0.0.1:{port}")
        deployment.wait(
            "both workers",
            lambda: all(
                " ready." in (tmp / f"{w}.log").read_text(errors="replace", encoding="utf-8") for w in WORKERS
            ),
        )
        yield deployment
    finally:
        syn.stop()
        for site in sites.values():
            site.server.stop()
        get_engine(database_url).dispose()


def _paths(log: list[Exchange]) -> list[str]:
    return [e.path for e in log]


def _all_ready(articles: dict[str, Article]) -> bool:
    return all(a.status == "ready" for a in articles.values())


def _edit(story: Story, title: str, lastmod: str | None = None) -> None:
    story.title = title
    if lastmod is not None:
        story.lastmod = lastmod


def _assert_unchanged_recrawl(log: list[Exchange], paths: list[str]) -> None:
    """Only ``paths`` were asked for, each conditionally, and each was answered 304."""
    assert _paths(log) == paths, log
    assert all(e.if_none_match and e.status == 304 for e in log), log


def test_listing_with_pagination(deployment: Deployment) -> None:
    site, server = deployment.sites["listing"], deployment.server("listing")
    assert deployment.crawl("listing") == 5
    log = server.take()
    assert _paths(log)[:3] == ["/news/", "/news/page/2/", "/news/page/3/"]
    assert sorted(_paths(log)[3:]) == sorted(s.path for s in site.stories)
    articles = deployment.articles("listing")
    assert set(articles) == {s.path for s in site.stories} and _all_ready(articles)
    assert {a.title for a in articles.values()} == {s.title for s in site.stories}

    # Unchanged: one conditional request for page 1, a 304; no page 2, no article fetched again.
    assert deployment.crawl("listing") == 0
    _assert_unchanged_recrawl(server.take(), ["/news/"])

    # A new story on page 1 next to a known one: only it is taken, page 2 is not read, nothing doubles.
    fresh = site.add(Story("listing-brand-new-story", "A brand new story about the bridge"))
    assert deployment.crawl("listing") == 1
    log = server.take()
    assert _paths(log) == ["/news/", fresh.path] and [e.status for e in log] == [200, 200]
    after = deployment.articles("listing")
    assert len(after) == 6 and _all_ready(after)
    assert all(after[path].id == article.id for path, article in articles.items())


def test_sitemap_with_an_index(deployment: Deployment) -> None:
    site, server = deployment.sites["sitemap"], deployment.server("sitemap")
    assert deployment.crawl("sitemap") == 5
    log = server.take()
    children = ["/sitemaps/recent.xml", "/sitemaps/older.xml"]
    assert _paths(log)[:3] == ["/sitemap_index.xml", *children]
    assert sorted(_paths(log)[3:]) == sorted(s.path for s in site.stories)
    before = deployment.articles("sitemap")
    assert len(before) == 5 and _all_ready(before)

    # Unchanged: the index answers 304 and nothing else is asked for.
    assert deployment.crawl("sitemap") == 0
    _assert_unchanged_recrawl(server.take(), ["/sitemap_index.xml"])

    # The partner corrects its newest story: the page's ETag, its lastmod and its child's move on.
    edited = site.stories[0]
    _edit(edited, "Sitemap story number 5, corrected", "2024-05-04T09:00:00+00:00")
    _sitemaps(site)
    assert deployment.crawl("sitemap") == 1
    log = server.take()
    # The other child's lastmod did not move: not even a conditional request for it.
    assert _paths(log) == ["/sitemap_index.xml", "/sitemaps/recent.xml", edited.path]
    assert all(e.status == 200 and e.if_none_match for e in log), log
    after = deployment.articles("sitemap")
    assert len(after) == 5 and _all_ready(after)
    assert after[edited.path].id == before[edited.path].id
    assert after[edited.path].title == "Sitemap story number 5, corrected"


def test_feed_with_full_text_fetched_from_each_link(deployment: Deployment) -> None:
    site, server = deployment.sites["feed"], deployment.server("feed")
    assert deployment.crawl("feed") == 4
    log = server.take()
    assert _paths(log)[:1] == ["/feed.atom"]
    assert sorted(_paths(log)[1:]) == sorted(s.path for s in site.stories)
    before = deployment.articles("feed")
    assert len(before) == 4 and _all_ready(before)
    for article in before.values():
        # The feed had one summary line; the text is the page's own six paragraphs.
        assert "Paragraph 5 of the report" in (article.text or "")
    undated = before[site.stories[1].path]
    assert undated.published is not None
    assert undated.published.strftime("%Y-%m-%dT%H:%M") == "2024-05-03T00:30"  # the feed's date kept

    assert deployment.crawl("feed") == 0
    _assert_unchanged_recrawl(server.take(), ["/feed.atom"])

    edited = site.stories[2]
    _edit(edited, "Feed story number 2, corrected", "2024-05-04T09:00:00+00:00")
    _atom(site)
    assert deployment.crawl("feed") == 1
    log = server.take()
    assert _paths(log) == ["/feed.atom", edited.path]
    assert all(e.status == 200 and e.if_none_match for e in log), log
    after = deployment.articles("feed")
    assert len(after) == 4 and _all_ready(after)
    assert after[edited.path].id == before[edited.path].id
    assert after[edited.path].title == "Feed story number 2, corrected"


def test_page_watched_for_changes(deployment: Deployment) -> None:
    site, server = deployment.sites["page"], deployment.server("page")
    watched = site.stories[0]
    assert deployment.crawl("page") == 1
    assert _paths(server.take()) == [watched.path]
    [before] = deployment.articles("page").values()
    assert before.status == "ready" and before.title == watched.title

    # The page is the article: every crawl asks for it again, conditionally, and a 304 parses nothing.
    assert deployment.crawl("page") == 1
    _assert_unchanged_recrawl(server.take(), [watched.path])
    [same] = deployment.articles("page").values()
    assert same.changed_at == before.changed_at

    _edit(watched, "The watched page, now updated")
    assert deployment.crawl("page") == 1
    log = server.take()
    assert _paths(log) == [watched.path] and log[0].status == 200 and log[0].if_none_match
    [after] = deployment.articles("page").values()
    assert after.id == before.id and after.status == "ready"
    assert after.title == "The watched page, now updated"


def test_push_through_the_ingest_api(deployment: Deployment) -> None:
    site, server = deployment.sites["push"], deployment.server("push")
    urls = [server.url(s.path) for s in site.stories]
    answers = [deployment.push(url) for url in urls]
    assert all(a["created"] for a in answers)
    assert sorted(_paths(server.take())) == sorted(s.path for s in site.stories)
    pushed = {a.url: a for a in deployment.articles("api").values() if a.url in urls}
    assert len(pushed) == 2 and _all_ready(pushed)

    # The partner pushes the same URLs again: we hold them, so each fetch is conditional, a 304.
    again = [deployment.push(url) for url in urls]
    assert [a["id"] for a in again] == [a["id"] for a in answers] and not any(a["created"] for a in again)
    log = server.take()
    assert sorted(_paths(log)) == sorted(s.path for s in site.stories)
    assert all(e.if_none_match and e.status == 304 for e in log), log

    edited = site.stories[0]
    _edit(edited, "Pushed story, corrected")
    third = deployment.push(server.url(edited.path))
    assert third["id"] == answers[0]["id"] and not third["created"]
    log = server.take()
    assert _paths(log) == [edited.path] and log[0].status == 200 and log[0].if_none_match
    after = {a.url: a for a in deployment.articles("api").values() if a.url in urls}
    assert len(after) == 2 and _all_ready(after)
    assert after[urls[0]].title == "Pushed story, corrected"


def test_robots_disallowed_article_is_never_requested(deployment: Deployment) -> None:
    site, server = deployment.sites["guarded"], deployment.server("guarded")
    private = next(s for s in site.stories if "private" in s.slug)
    assert deployment.crawl("guarded") == 3
    log = server.take(robots=True)
    assert private.path not in _paths(log)
    assert set(_paths(log)) == {"/robots.txt", "/news/", *(s.path for s in site.stories if s != private)}
    articles = deployment.articles("guarded")
    assert articles[private.path].status == "skipped"
    assert sorted(a.status for p, a in articles.items() if p != private.path) == ["ready", "ready"]

    guarded = next(s for s in deployment.status()["sources"] if s["name"] == "guarded")
    assert guarded["skipped"] == 1 and guarded["articles"] == 2 and guarded["last_error"] is None
    [entry] = guarded["skipped_recent"]
    assert entry["url"] == server.url(private.path)
    assert "robots.txt disallows" in entry["reason"] and private.path in entry["reason"]


def test_crawl_delay_holds_across_two_workers_and_nothing_is_lost(deployment: Deployment) -> None:
    site, server = deployment.sites["polite"], deployment.server("polite")
    logs_before = {
        w: len((deployment.syn.cwd / f"{w}.log").read_text(errors="replace", encoding="utf-8"))
        for w in WORKERS
    }
    assert deployment.crawl("polite") == 8

    # Nothing lost: every article ready, none failed, and no Celery retry spent on a busy host.
    articles = deployment.articles("polite")
    assert len(articles) == 8 and _all_ready(articles)
    assert deployment.status()["articles"].get("failed", 0) == 0
    new = {
        w: (deployment.syn.cwd / f"{w}.log").read_text(errors="replace", encoding="utf-8")[logs_before[w] :]
        for w in WORKERS
    }
    new_lines = "".join(new.values())
    assert " retry: " not in new_lines
    # Both worker processes ran article tasks for this host (finished or sent again for later).
    assert all(re.search(r"Task syndicate\.process_article\[[^\]]+\] succeeded", new[w]) for w in WORKERS)

    log = server.take(robots=True)
    paths = _paths(log)
    assert set(paths) == {"/robots.txt", "/news/", "/news/page/2/", *(s.path for s in site.stories)}
    gaps = [round(later.at - earlier.at, 3) for earlier, later in itertools.pairwise(log)]
    too_close = [
        (log[i].path, log[i + 1].path, gap) for i, gap in enumerate(gaps) if gap < CRAWL_DELAY - 0.02
    ]
    # Arrival times differ from Redis's grant times by the loopback round trip only. robots.txt is
    # fetched once for every worker process (shared in Redis), like the host's budget.
    assert (too_close, paths.count("/robots.txt")) == ([], 1), gaps
    assert "rescheduled in" in new_lines  # the host really was busy: tasks were sent again, later
