"""Crawl and process stages against a real local site: idempotent conditional re-crawls, normalized
articles, canonical duplicates, SSRF-blocked links and a failing listing that backs off, on SQLite
and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from tests.support.httpserver import HTTPTestServer, Response
from worker.crawl import MAX_BACKOFF_SECONDS, backoff_delay, crawl_source, run_crawl
from worker.errors import HostBusy, Retryable

STORIES = ["/news/solar-cluster.html", "/news/farm-cooperative.html", "/news/robotics-camp.html"]


def test_crawl_creates_pending_articles_and_is_idempotent(pipe, site: HTTPTestServer) -> None:
    ids = pipe.crawl("valley")

    assert len(ids) == 3
    articles = pipe.articles()
    # The fragment of the robotics link is dropped; nothing else is stored.
    assert set(articles) == {site.url(p) for p in STORIES}
    assert {a.status for a in articles.values()} == {"pending"}
    assert {a.id for a in articles.values()} == set(ids)
    source = pipe.source("valley")
    assert source.crawl_count == 1 and source.last_error is None and source.last_success_at is not None

    # Crawling again before processing: same pending ids, no new rows.
    assert sorted(pipe.crawl("valley")) == sorted(ids)
    assert len(pipe.articles()) == 3

    pipe.process(ids)
    before = pipe.articles()
    site.requests.clear()
    assert pipe.crawl("valley") == []
    # The listing answered 304 to our validators: nothing parsed, no article fetched again.
    assert [(r.path, r.header("If-None-Match") is not None) for r in site.requests] == [("/news/", True)]
    after = pipe.articles()
    assert set(after) == set(before)
    for url, old in before.items():
        new = after[url]
        for column in (
            "id",
            "status",
            "title",
            "text",
            "content_hash",
            "fetched_at",
            "changed_at",
            "attempts",
        ):
            assert getattr(new, column) == getattr(old, column), (url, column)
    assert pipe.source("valley").crawl_count == 3


def test_process_makes_articles_ready_with_normalized_fields(pipe, site: HTTPTestServer) -> None:
    ids = pipe.crawl("valley")
    outcomes = {o.article_id: o for o in pipe.process(ids)}

    assert {o.status for o in outcomes.values()} == {"ready"}
    assert all(o.changed and o.share and o.feeds == ["all"] for o in outcomes.values())
    solar = pipe.article(site.url("/news/solar-cluster.html"))
    assert solar.status == "ready" and solar.error is None
    assert solar.title == "Solar cluster opens a shared test lab"
    assert "shared test laboratory" in solar.text
    assert "Share this article" not in solar.text and "Share this article" not in solar.content_html
    assert solar.category == "IT Systems"
    assert set(solar.tags) == {"Energy", "Partnership"}
    assert solar.published is not None and solar.published.isoformat() == "2024-04-10T07:00:00+00:00"
    assert solar.authors == ["Ana Pop"]
    assert solar.content_hash and solar.fetched_at is not None and solar.changed_at == solar.fetched_at
    assert pipe.article(site.url("/news/farm-cooperative.html")).category == "Agriculture"

    # Processing again changes nothing: same content, no feeds to re-render, no second share.
    again = pipe.process([solar.id])[0]
    assert (again.status, again.changed, again.feeds, again.share) == ("ready", False, [], False)
    assert pipe.article(solar.id).changed_at == solar.changed_at


def test_page_source_uses_its_default_category(site: HTTPTestServer, make_pipe) -> None:
    config = {
        "fetch": {"allow_hosts": [site.host_port]},
        "sources": [
            {"name": "plain", "kind": "page", "url": site.url("/bad/fine.html"), "category": "Ignored"},
            {"name": "nocat", "kind": "page", "url": site.url("/dupes/story.html"), "category": "Events"},
        ],
    }
    pipe = make_pipe(config)
    pipe.crawl_and_process("plain", "nocat")
    # A page's own section wins over the source default; without one the default applies.
    assert pipe.article(site.url("/bad/fine.html")).category == "Community"
    assert pipe.article(site.url("/dupes/river-festival.html")).category == "Events"


def test_same_canonical_url_gives_one_ready_and_one_duplicate(site: HTTPTestServer, make_pipe) -> None:
    config = {
        "fetch": {"allow_hosts": [site.host_port]},
        "sources": [
            {
                "name": "dupes",
                "kind": "listing",
                "url": site.url("/dupes/"),
                "options": {"link_selector": "a.post-link"},
            },
        ],
    }
    pipe = make_pipe(config)
    ids = pipe.crawl("dupes")
    assert len(ids) == 2
    outcomes = pipe.process(ids)

    assert [o.status for o in outcomes] == ["ready", "duplicate"]
    first, second = (pipe.article(i) for i in ids)
    assert first.status == "ready"
    assert first.canonical_url == site.url("/dupes/river-festival.html")
    assert second.status == "duplicate" and second.duplicate_of_id == first.id
    assert not outcomes[1].share and outcomes[1].feeds == []
    # A duplicate stays a duplicate, and crawling again creates nothing new.
    assert pipe.process([second.id])[0].status == "duplicate"
    assert pipe.crawl("dupes") == []
    assert len(pipe.articles()) == 2


def test_hostile_links_are_blocked_and_never_fetched(site: HTTPTestServer, make_pipe) -> None:
    with HTTPTestServer(root=None) as other:
        other.content("/secret.html", b"<html><body><h1>internal</h1><p>secret</p></body></html>")
        listing = (site.root / "hostile" / "index.html").read_bytes()  # type: ignore[operator]
        site.content(
            "/hostile/",
            listing.replace(b"{{OTHER_BASE_URL}}", other.base_url.encode()).replace(
                b"{{BASE_URL}}", site.base_url.encode()
            ),
        )
        site.redirect("/hostile/bounce.html", "http://169.254.169.254/latest/meta-data/iam/")
        config = {
            "fetch": {"allow_hosts": [site.host_port], "timeout": "3s"},
            "sources": [
                {
                    "name": "hostile",
                    "kind": "listing",
                    "url": site.url("/hostile/"),
                    "options": {"link_selector": "a.post-link", "link_pattern": "^https?://"},
                },
            ],
        }
        pipe = make_pipe(config)
        ids = pipe.crawl("hostile")
        assert len(ids) == 4
        started = time.monotonic()
        pipe.process(ids)
        assert time.monotonic() - started < 5  # refused up front, not after a connect timeout

        articles = pipe.articles()
        assert articles[site.url("/news/solar-cluster.html")].status == "ready"
        for url in (
            "http://169.254.169.254/latest/meta-data/",
            other.url("/secret.html"),
            site.url("/hostile/bounce.html"),
        ):
            article = articles[url]
            assert article.status == "failed", url
            assert article.error.startswith("BlockedURL:"), article.error
            assert article.title is None and article.text is None
        assert "169.254.169.254" in articles[site.url("/hostile/bounce.html")].error
        assert other.requests == []
        assert len(site.requests_to("/hostile/bounce.html")) == 1


def test_listing_answering_500_records_the_error_and_backs_off(pipe, site: HTTPTestServer) -> None:
    """A failing crawl is not retried in a tight loop: the source backs off, skipping beat runs."""
    listing = (site.root / "news" / "index.html").read_bytes()  # type: ignore[operator]
    answers = [Response(500, b"oops", {"Content-Type": "text/plain"})]
    site.route("/news/", lambda request: answers[0])
    report = run_crawl(pipe.rt, pipe.source_id("valley"))
    assert report.failed and "HTTP 500" in (report.error or "") and report.ids == []

    source = pipe.source("valley")
    assert source.last_error is not None and "HTTP 500" in source.last_error
    assert source.error_count == 1 and source.consecutive_errors == 1 and source.last_success_at is None
    assert source.failing_since == source.last_crawl_at
    assert pipe.articles() == {}
    # One failure waits half an interval (the next beat run retries); the second skips a run.
    assert source.next_crawl_at is not None
    assert (source.next_crawl_at - source.last_crawl_at).total_seconds() == pytest.approx(450, abs=1)

    # Until then a beat run does not even ask the site; `syndicate crawl` (force) does.
    site.requests.clear()
    assert run_crawl(pipe.rt, pipe.source_id("valley")).deferred == source.next_crawl_at
    assert site.requests == []
    assert run_crawl(pipe.rt, pipe.source_id("valley"), force=True).failed
    second = pipe.source("valley")
    assert second.consecutive_errors == 2 and second.failing_since == source.failing_since
    assert second.next_crawl_at is not None and second.last_crawl_at is not None
    assert (second.next_crawl_at - second.last_crawl_at).total_seconds() == pytest.approx(1350, abs=1)

    # Once the listing is back the same source crawls normally and the error is cleared.
    answers[0] = Response(200, listing, {"Content-Type": "text/html; charset=utf-8"})
    assert len(crawl_source(pipe.rt, pipe.source_id("valley"), force=True)) == 3
    recovered = pipe.source("valley")
    assert recovered.last_error is None and recovered.last_success_at is not None
    assert recovered.consecutive_errors == 0 and recovered.failing_since is None
    assert recovered.next_crawl_at is None


def test_backoff_grows_with_the_error_count_and_honours_retry_after() -> None:
    assert [backoff_delay(100, n) for n in range(5)] == [0, 50, 150, 350, 750]
    assert backoff_delay(900, 40) == MAX_BACKOFF_SECONDS
    assert backoff_delay(100, 1, retry_after=600) == 600


def test_listing_answering_404_is_recorded_not_raised(pipe, site: HTTPTestServer) -> None:
    site.status("/news/", 404)
    assert pipe.crawl("valley") == []
    source = pipe.source("valley")
    assert (
        source.last_error is not None
        and "HTTPStatusError" in source.last_error
        and "404" in source.last_error
    )


def test_overlong_link_does_not_break_the_crawl(pipe, site: HTTPTestServer) -> None:
    long_path = "/news/" + "a" * 2100 + ".html"
    listing = (
        b'<html><body><main><a class="post-link" href="/news/solar-cluster.html">ok</a>'
        b'<a class="post-link" href="' + long_path.encode() + b'">too long</a></main></body></html>'
    )
    site.content("/news/", listing)
    ids = pipe.crawl("valley")

    # The normal story is stored and can be processed; the crawl did not fail on the long URL.
    solar = pipe.articles()[site.url("/news/solar-cluster.html")]
    assert solar.id in ids
    assert pipe.source("valley").last_error is None
    assert pipe.process([solar.id])[0].status == "ready"
    assert all(len(a.canonical_url) <= 2048 for a in pipe.articles().values())


def test_a_slow_article_is_a_retryable_timeout(site: HTTPTestServer, make_pipe) -> None:
    config = {
        "fetch": {"allow_hosts": [site.host_port], "timeout": "0.5s"},
        "sources": [{"name": "slow", "kind": "page", "url": site.url("/slow.html")}],
    }
    slow_pipe = make_pipe(config)
    site.route(
        "/slow.html",
        Response(200, b"<html><body>late</body></html>", {"Content-Type": "text/html"}, delay=2.0),
    )
    [article_id] = slow_pipe.crawl("slow")
    with pytest.raises(Retryable):
        slow_pipe.process([article_id])
    article = slow_pipe.article(article_id)
    assert article.status == "pending" and article.attempts == 1


def test_concurrent_crawl_that_stored_a_url_first_is_not_an_error(
    pipe, site: HTTPTestServer, database_url
) -> None:
    """Beat and `syndicate crawl` crawl the same source at once: the loser skips what the winner stored."""
    from sqlalchemy import event, insert, select

    from worker.store.db import get_engine
    from worker.store.models import Article, Source, utcnow

    raced: list[str] = []

    def other_crawl_commits_first(session, flush_context, instances) -> None:
        for obj in list(session.new):
            if isinstance(obj, Article) and not raced:
                raced.append(obj.url)
                with get_engine(database_url).begin() as conn:  # a separate connection and transaction
                    source_id = conn.execute(select(Source.id).where(Source.name == "valley")).scalar_one()
                    now = utcnow()
                    conn.execute(
                        insert(Article).values(
                            source_id=source_id,
                            url=obj.url,
                            canonical_url=obj.url,
                            status="pending",
                            authors=[],
                            tags=[],
                            attempts=0,
                            first_seen_at=now,
                            last_seen_at=now,
                        )
                    )

    event.listen(pipe.rt.sessionmaker, "before_flush", other_crawl_commits_first)
    try:
        ids = pipe.crawl("valley")
    finally:
        event.remove(pipe.rt.sessionmaker, "before_flush", other_crawl_commits_first)

    assert len(raced) == 1
    assert len(ids) == 2  # the raced URL is the other crawl's to enqueue
    articles = pipe.articles()
    assert set(articles) == {site.url(p) for p in STORIES}
    assert pipe.source("valley").last_error is None


def test_a_recrawl_leaves_pending_articles_to_the_messages_that_cover_them(pipe) -> None:
    """The crawl returns its source's pending articles again; ``uncovered`` (the worker passes the work
    markers' view) keeps only those no live message covers, and of those only the ones still pending
    when it answered (one that finished while the markers were read is not sent again). In
    test_scale_out the second crawl re-sent articles waiting for their host's turn: pages fetched twice."""
    first, covered, finished = pipe.crawl("valley")
    asked: list[list[int]] = []

    def uncovered(ids: list[int]) -> list[int]:
        asked.append(list(ids))
        pipe.process([finished])  # finishes (commits, drops its marker) while the markers are read
        return [i for i in ids if i != covered]

    again = crawl_source(pipe.rt, pipe.source_id("valley"), force=True, uncovered=uncovered)
    assert asked == [[first, covered, finished]]
    assert again == [first]
    assert pipe.article(finished).status == "ready"
    # Without the markers' view (the CLI, tests), every pending article is returned, as before.
    assert crawl_source(pipe.rt, pipe.source_id("valley"), force=True) == [first, covered]


def test_an_interrupted_crawl_holds_only_what_it_found_new(pipe, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl its host's budget interrupts keeps, for its completion, the ids it found new or changed;
    not the pending articles it listed again: those are looked at anew when it completes (with the
    markers' view), since their own messages may have processed them meanwhile. Held, they were sent
    at completion whatever their state: test_scale_out (under load) saw those pages fetched twice."""
    ids = pipe.crawl("valley")
    assert len(ids) == 3

    def busy(url: str, **_: object) -> None:
        raise HostBusy(f"{url}: busy", url, retry_after=0.5)

    with monkeypatch.context() as patch:
        patch.setattr(pipe.rt.fetcher, "get", busy)
        with pytest.raises(HostBusy):
            crawl_source(pipe.rt, pipe.source_id("valley"), force=True)
    cursor = pipe.source("valley").cursor
    assert cursor is not None and cursor["documents"] and cursor["ids"] == []
    # The crawl completes while every pending article's message still covers it: nothing is sent again.
    again = crawl_source(pipe.rt, pipe.source_id("valley"), force=True, uncovered=lambda _ids: [])
    assert again == []
    assert pipe.source("valley").cursor is None
