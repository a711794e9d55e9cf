"""Bad input loses nothing: every broken page ends in a clear state with a readable reason.

A listing links to a deleted page, an image, malformed HTML, a windows-1252 page without charset,
a page over ``fetch.max_bytes`` and an empty page; a 503 storm leaves the article pending for a
retry. Real HTTP server, SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.support.httpserver import HTTPTestServer
from worker.errors import Retryable, TransientFetchError


@pytest.fixture
def bag(site: HTTPTestServer, make_pipe):
    """A Pipe whose only source is the mixed-bag listing, with the awkward routes installed."""
    cp1252 = (site.root / "bad" / "cp1252.html").read_bytes()  # type: ignore[operator]
    site.content("/bad/cp1252.html", cp1252, "text/html")  # no charset anywhere
    site.huge("/bad/huge.html", 300_000, content_type="text/html; charset=utf-8")
    config = {
        "fetch": {"allow_hosts": [site.host_port], "timeout": "5s", "max_bytes": 200_000},
        "sources": [
            {
                "name": "bag",
                "kind": "listing",
                "url": site.url("/bad/"),
                "options": {"link_selector": "a.post-link"},
            },
        ],
    }
    pipe = make_pipe(config)
    ids = pipe.crawl("bag")
    assert len(ids) == 7
    outcomes = pipe.process(ids)
    assert len(outcomes) == 7
    return pipe


def test_every_broken_page_ends_failed_with_its_reason(bag, site: HTTPTestServer) -> None:
    articles = bag.articles()
    assert set(articles) == {
        site.url(f"/bad/{name}")
        for name in (
            "fine.html",
            "missing.html",
            "logo.png",
            "malformed.html",
            "cp1252.html",
            "huge.html",
            "empty.html",
        )
    }

    missing = articles[site.url("/bad/missing.html")]
    assert missing.status == "failed"
    assert missing.error.startswith("HTTPStatusError:") and "404" in missing.error

    logo = articles[site.url("/bad/logo.png")]
    assert logo.status == "failed"
    assert logo.error.startswith("UnsupportedContent:") and "image/png" in logo.error

    huge = articles[site.url("/bad/huge.html")]
    assert huge.status == "failed"
    assert huge.error.startswith("TooLarge:") and "200000" in huge.error

    empty = articles[site.url("/bad/empty.html")]
    assert empty.status == "failed" and empty.error.startswith("NormalizeError:")

    for article in (missing, logo, huge, empty):
        assert article.title is None and article.content_hash is None and article.attempts == 1


def test_the_good_pages_of_a_broken_listing_are_ready(bag, site: HTTPTestServer) -> None:
    articles = bag.articles()
    fine = articles[site.url("/bad/fine.html")]
    assert fine.status == "ready" and fine.title == "A fine story" and "footbridge" in fine.text

    malformed = articles[site.url("/bad/malformed.html")]
    assert malformed.status == "ready", malformed.error
    assert "makerspace" in malformed.title
    assert "3D printers" in malformed.text and "Bookings open on Monday" in malformed.text
    assert "<TABLE" not in malformed.content_html and "<font" not in malformed.content_html.lower()

    cp1252 = articles[site.url("/bad/cp1252.html")]
    assert cp1252.status == "ready", cp1252.error
    assert cp1252.title == "Café owners “thrilled” by the new market hall"
    assert "1.2 million €" in cp1252.text and "crème fraîche" in cp1252.text
    assert "weekend\u2019s" in cp1252.text
    assert "\ufffd" not in cp1252.text and "Ã" not in cp1252.text


def test_a_failed_article_is_not_retried_by_crawling_but_a_fixed_page_recovers(
    bag, site: HTTPTestServer
) -> None:
    assert bag.crawl("bag") == []  # failed articles are not re-queued by every crawl
    missing = bag.article(site.url("/bad/missing.html"))
    assert site.root is not None
    fixed = (site.root / "bad" / "fine.html").read_bytes().replace(b"A fine story", b"The story is back")
    site.content("/bad/missing.html", fixed)
    assert bag.process([missing.id])[0].status == "ready"
    restored = bag.article(missing.id)
    assert restored.status == "ready" and restored.title == "The story is back" and restored.error is None


def test_a_503_storm_keeps_the_article_pending_for_a_retry(pipe, site: HTTPTestServer) -> None:
    site.status("/news/farm-cooperative.html", 503, headers={"Retry-After": "120"})
    ids = pipe.crawl("valley")
    farm_id = pipe.article(site.url("/news/farm-cooperative.html")).id

    for attempt in range(1, 4):
        with pytest.raises(TransientFetchError) as caught:
            pipe.process([farm_id])
        assert isinstance(caught.value, Retryable)
        assert caught.value.status == 503 and caught.value.retry_after == 120.0
        farm = pipe.article(farm_id)
        assert farm.status == "pending" and farm.attempts == attempt and farm.title is None

        assert farm.error == f"attempt {attempt} of 6 failed: TransientFetchError: {caught.value}"

    # The others are unaffected, and the next crawl hands the pending one back for processing.
    pipe.process([i for i in ids if i != farm_id])
    assert sorted(a.status for a in pipe.articles().values()) == ["pending", "ready", "ready"]
    assert pipe.crawl("valley") == [farm_id]
    assert len(site.requests_to("/news/farm-cooperative.html")) == 3


def test_giving_up_after_retries_marks_the_article_failed(pipe, site: HTTPTestServer) -> None:
    from worker.process import mark_article_failed

    site.status("/news/farm-cooperative.html", 503)
    pipe.crawl("valley")
    farm_id = pipe.article(site.url("/news/farm-cooperative.html")).id
    with pytest.raises(TransientFetchError) as caught:
        pipe.process([farm_id])
    mark_article_failed(pipe.rt, farm_id, caught.value)
    farm = pipe.article(farm_id)
    assert farm.status == "failed" and farm.error.startswith("TransientFetchError: HTTP 503")


def test_an_overlong_category_or_canonical_url_does_not_lose_the_article(pipe, site: HTTPTestServer) -> None:
    page = (
        "<html><head><title>Long metadata</title>"
        f'<meta property="article:section" content="{"Very long section name " * 20}">'
        f'<link rel="canonical" href="{site.url("/news/" + "c" * 2100)}">'
        "</head><body><article><h1>Long metadata</h1>"
        "<p>A partner CMS put a whole sentence into the section field and a runaway canonical link in the"
        " head, but the story itself is perfectly readable and must not be lost because of it.</p>"
        "</article></body></html>"
    )
    site.content("/news/solar-cluster.html", page.encode())
    pipe.crawl("valley")
    article_id = pipe.article(site.url("/news/solar-cluster.html")).id
    outcome = pipe.process([article_id])[0]

    article = pipe.article(article_id)
    assert outcome.status == "ready" and article.status == "ready", article.error
    assert article.title == "Long metadata"
    assert article.category is not None and article.category.startswith("Very long section name")
    assert len(article.category) <= 255
    assert article.canonical_url == site.url("/news/solar-cluster.html")


def test_a_page_that_keeps_failing_is_failed_after_its_attempts_with_the_reason(
    pipe, site: HTTPTestServer
) -> None:
    """Counted in the database, so a task re-sent for its host's turn or by the sweep does not start over."""
    site.status("/news/farm-cooperative.html", 503)
    pipe.crawl("valley")
    farm_id = pipe.article(site.url("/news/farm-cooperative.html")).id
    for _ in range(5):
        with pytest.raises(TransientFetchError):
            pipe.process([farm_id])
    [outcome] = pipe.process([farm_id])
    farm = pipe.article(farm_id)
    assert outcome.status == "failed" and farm.status == "failed" and farm.attempts == 6
    assert farm.error.startswith("gave up after 6 attempts: TransientFetchError:") and "503" in farm.error
    assert len(site.requests_to("/news/farm-cooperative.html")) == 6
