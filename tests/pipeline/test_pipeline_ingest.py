"""Pushed articles (ingest_article) with HTML, with fields only, with a URL only, and re-pushed;
and stale_work, which finds pending work whose task message was probably lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.support.httpserver import HTTPTestServer
from worker.ingest import PushedArticle, ingest_article
from worker.ops.sweep import stale_work
from worker.outbox.planning import plan_shares
from worker.store.models import PUSH_SOURCE, Article, Share

PUSHED_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Pushed with its own page</title><meta property="article:section" content="IT Systems"></head>
<body><article><h1>Pushed with its own page</h1>
<p>The partner sent the whole page over the API, so Syndicate does not need to fetch anything at all.</p>
<p>It still goes through the same normalizer as crawled pages, which strips the chrome around it.</p>
</article></body></html>"""


def test_ingest_with_html_stores_a_pending_article_that_processes_without_fetching(
    pipe, site: HTTPTestServer
) -> None:
    url = site.url("/pushed/own-page.html")
    article_id, created = ingest_article(pipe.rt, PushedArticle(url=url + "#top", html=PUSHED_HTML))
    assert created is True

    stored = pipe.article(article_id)
    assert stored.status == "pending" and stored.url == url and stored.raw_html == PUSHED_HTML
    with pipe.rt.session() as session:
        assert session.get(Article, article_id).source.name == PUSH_SOURCE

    outcome = pipe.process([article_id])[0]
    assert outcome.status == "ready" and outcome.share
    ready = pipe.article(article_id)
    assert ready.title == "Pushed with its own page" and ready.category == "IT Systems"
    assert site.requests_to("/pushed/own-page.html") == []  # nothing was fetched


def test_ingest_with_fields_only_builds_the_article_from_them(pipe) -> None:
    published = datetime(2019, 3, 6, 10, 0, tzinfo=UTC)
    item = PushedArticle(
        url="https://partner.example/story",
        title="Fields only <b>story</b>",
        content_html="<p>The clusters agreed on a mentorship programme for start-ups from both regions,"
        " starting with twelve companies this autumn.</p><script>alert(1)</script>",
        summary="A mentorship programme for start-ups",
        published=published,
        authors=("Ana Pop", "Sami Khalil"),
        category="IT Systems",
        tags=("Mentorship", "Start-ups"),
        language="en",
        source="valley",
    )
    article_id, created = ingest_article(pipe.rt, item)
    assert created
    assert pipe.process([article_id])[0].status == "ready"

    article = pipe.article(article_id)
    assert article.title == "Fields only <b>story</b>"
    assert "mentorship programme" in article.text
    assert "<script" not in article.content_html and "alert(1)" not in article.text
    assert article.published == published
    assert article.authors == ["Ana Pop", "Sami Khalil"]
    assert article.category == "IT Systems" and set(article.tags) == {"Mentorship", "Start-ups"}
    assert article.language == "en" and article.canonical_url == "https://partner.example/story"
    with pipe.rt.session() as session:
        assert session.get(Article, article_id).source.name == "valley"


def test_ingest_with_url_only_fetches_the_page(pipe, site: HTTPTestServer) -> None:
    article_id, created = ingest_article(pipe.rt, PushedArticle(url=site.url("/news/robotics-camp.html")))
    assert created and pipe.article(article_id).raw_html is None
    assert pipe.process([article_id])[0].status == "ready"
    assert pipe.article(article_id).title == "Robotics camp for girls returns"
    assert len(site.requests_to("/news/robotics-camp.html")) == 1


def test_repush_of_the_same_url_updates_instead_of_duplicating(pipe) -> None:
    url = "https://partner.example/news/repushed"
    first_id, created = ingest_article(
        pipe.rt,
        PushedArticle(
            url=url,
            title="First version",
            content_html="<p>" + "The first version of the story. " * 5 + "</p>",
        ),
    )
    assert created
    pipe.process([first_id])
    assert pipe.article(first_id).title == "First version"

    second_id, created_again = ingest_article(
        pipe.rt,
        PushedArticle(
            url=url,
            title="Second version",
            content_html="<p>" + "The corrected version of the story. " * 5 + "</p>",
        ),
    )
    assert second_id == first_id and created_again is False
    assert len(pipe.articles()) == 1
    outcome = pipe.process([first_id])[0]
    assert outcome.changed and not outcome.share  # updated in the feeds, not shared a second time
    assert pipe.article(first_id).title == "Second version"


def test_repush_of_a_failed_article_makes_it_pending_again(pipe, site: HTTPTestServer) -> None:
    url = site.url("/pushed/missing.html")
    article_id, _ = ingest_article(pipe.rt, PushedArticle(url=url))
    assert pipe.process([article_id])[0].status == "failed"
    again_id, created = ingest_article(pipe.rt, PushedArticle(url=url, html=PUSHED_HTML))
    assert (again_id, created) == (article_id, False)
    assert pipe.article(article_id).status == "pending"
    assert pipe.process([article_id])[0].status == "ready"
    assert pipe.article(article_id).error is None


def test_repush_by_canonical_url_finds_the_crawled_article(pipe, site: HTTPTestServer) -> None:
    [article_id] = [i for i in pipe.crawl("valley") if pipe.article(i).url.endswith("solar-cluster.html")]
    pushed_id, created = ingest_article(pipe.rt, PushedArticle(url=site.url("/news/solar-cluster.html")))
    assert (pushed_id, created) == (article_id, False)


def test_ingest_for_an_unknown_source_is_refused(pipe) -> None:
    with pytest.raises(LookupError, match="no source named 'nope'"):
        ingest_article(pipe.rt, PushedArticle(url="https://partner.example/x", title="x", source="nope"))
    assert pipe.articles() == {}


def test_stale_work_returns_old_pending_articles_and_shares(site_config, make_pipe) -> None:
    # First-crawl articles are back catalogue; this endpoint wants them so there are shares to sweep.
    site_config["endpoints"] = [
        {"name": "archive", "kind": "file", "path": "a.jsonl", "back_catalogue": True, "story_window": 0}
    ]
    pipe = make_pipe(site_config)
    ids = pipe.crawl("valley")
    old, fresh, done = ids
    pipe.process([done])
    [share_old] = plan_shares(pipe.rt, done)
    [harbour] = pipe.crawl("harbour")
    pipe.process([harbour])
    [share_fresh] = plan_shares(pipe.rt, harbour)

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with pipe.rt.session() as session:
        session.execute(update(Article).where(Article.id.in_([old, done])).values(last_seen_at=long_ago))
        session.execute(update(Share).where(Share.id == share_old).values(created_at=long_ago))

    articles, shares = stale_work(pipe.rt, timedelta(minutes=10))
    assert articles == [old]  # not the fresh pending one, not the old but ready one
    assert shares == [share_old]
    assert stale_work(pipe.rt, timedelta(hours=2)) == ([], [])
    everything = stale_work(pipe.rt, timedelta(seconds=-1))
    assert sorted(everything[0]) == sorted([old, fresh]) and sorted(everything[1]) == sorted(
        [share_old, share_fresh]
    )

    # Once the share is sent it is no longer stale work.
    with pipe.rt.session() as session:
        session.execute(update(Share).where(Share.id == share_old).values(status="sent"))
    assert stale_work(pipe.rt)[1] == []
