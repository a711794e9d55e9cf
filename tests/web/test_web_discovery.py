"""Discovery routes: ``/feeds.opml`` lists every feed, ``/feeds.xsl`` turns a feed into a readable
page, archive pages are served only when full, and the autodiscovery ``<link>`` tags cover every feed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.render import render_current
from worker.runtime import Runtime
from worker.web.app import create_web_app


@pytest.fixture
def rendered(runtime: Runtime) -> Runtime:
    """Two pushed articles, processed, and the feeds rendered."""
    for n in (1, 2):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Story number {n}",
                content_html=f"<p>Story number {n} tells of a partnership between two clusters.</p>",
                published=datetime(2024, 4, n, 9, 0, tzinfo=UTC),
            ),
        )
        assert process_article(runtime, article_id).status == "ready"
    assert render_current(runtime, "all")
    return runtime


def test_opml_lists_every_feed(client: TestClient, runtime: Runtime) -> None:
    from lxml import etree

    resp = client.get("/feeds.opml")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/x-opml")
    outlines = etree.fromstring(resp.content).findall("body/outline")
    base = runtime.settings.base_url
    assert [(o.get("type"), o.get("xmlUrl")) for o in outlines] == [
        ("rss", f"{base}/feeds/{f.name}.rss") for f in runtime.config.feeds
    ]
    assert [o.get("title") for o in outlines] == [f.title for f in runtime.config.feeds]


def test_stylesheet_is_served_and_referenced(client: TestClient, rendered: Runtime) -> None:
    from lxml import etree

    xsl = client.get("/feeds.xsl")
    assert xsl.status_code == 200 and xsl.headers["content-type"].startswith("text/xsl")
    transform = etree.XSLT(etree.fromstring(xsl.content))
    for fmt in ("rss", "atom"):
        body = client.get(f"/feeds/all.{fmt}").content
        assert f'href="{rendered.settings.base_url}/feeds.xsl"'.encode() in body.split(b"\n")[1]
        page = str(transform(etree.fromstring(body)))
        assert "Story number 2" in page and "<script" not in page


def test_archive_route_serves_full_pages_only(client: TestClient, rendered: Runtime) -> None:
    # Two articles and the default page size of 50: no full page yet.
    assert client.get("/feeds/all/archive/1.atom").status_code == 404
    assert client.get("/feeds/all/archive/1.xml").status_code == 404
    assert client.get("/feeds/nope/archive/1.rss").status_code == 404


def test_autodiscovery_links_cover_every_feed_and_format(runtime: Runtime) -> None:
    from worker.web.feeds import autodiscovery_links

    tags = autodiscovery_links(runtime.config, runtime.settings.base_url)
    base = runtime.settings.base_url
    for feed in runtime.config.feeds:
        for fmt in ("rss", "atom", "json"):
            assert f'href="{base}/feeds/{feed.name}.{fmt}"' in tags
    assert tags.count('rel="alternate"') == 3 * len(runtime.config.feeds)
    assert f'href="{base}/feeds.opml"' in tags


def test_status_page_head_advertises_every_feed(client: TestClient, runtime: Runtime) -> None:
    import lxml.html

    from worker.web.feeds import autodiscovery_links

    resp = client.get("/")
    assert resp.status_code == 200
    head = lxml.html.fromstring(resp.text).find("head")
    assert head is not None
    base = runtime.settings.base_url
    found = {
        (link.get("type"), link.get("href")) for link in head.iter("link") if link.get("rel") == "alternate"
    }
    types = {"rss": "application/rss+xml", "atom": "application/atom+xml", "json": "application/feed+json"}
    assert found == {
        (types[fmt], f"{base}/feeds/{feed.name}.{fmt}") for feed in runtime.config.feeds for fmt in types
    }
    outline = [link.get("href") for link in head.iter("link") if link.get("rel") == "outline"]
    assert outline == [f"{base}/feeds.opml"]
    # The same tags the helper writes for any other page.
    assert autodiscovery_links(runtime.config, base) in resp.text


def _site_links(client: TestClient, name: str) -> dict[str, str | None]:
    """The site link of feed ``name`` in each format, as a reader sees it."""
    import json

    from lxml import etree

    rss = etree.fromstring(client.get(f"/feeds/{name}.rss").content)
    atom = etree.fromstring(client.get(f"/feeds/{name}.atom").content)
    alternate = atom.find("{http://www.w3.org/2005/Atom}link[@rel='alternate']")
    return {
        "rss": rss.findtext("channel/link"),
        "atom": alternate.get("href") if alternate is not None else None,
        "json": json.loads(client.get(f"/feeds/{name}.json").content).get("home_page_url"),
    }


def test_feeds_link_to_the_publishers_site(
    make_runtime: Callable[..., Runtime], redis_url: str, config_factory: Callable[..., dict[str, Any]]
) -> None:
    """Issue 16: a feed's <link>, home_page_url and OPML htmlUrl pointed to the ops status page."""
    from lxml import etree

    config = config_factory(site_url="https://partners.example/")
    config["feeds"][1]["site_url"] = "https://partners.example/it-systems/"
    runtime = make_runtime(config, redis_url=redis_url)
    assert render_current(runtime, "all") and render_current(runtime, "it")
    with TestClient(create_web_app(runtime)) as client:
        assert _site_links(client, "all") == dict.fromkeys(
            ("rss", "atom", "json"), "https://partners.example/"
        )
        assert _site_links(client, "it") == dict.fromkeys(
            ("rss", "atom", "json"), "https://partners.example/it-systems/"
        )
        outlines = etree.fromstring(client.get("/feeds.opml").content).findall("body/outline")
        assert [o.get("htmlUrl") for o in outlines] == [
            "https://partners.example/",
            "https://partners.example/it-systems/",
        ]


def test_without_site_url_feeds_link_to_the_public_root(client: TestClient, rendered: Runtime) -> None:
    root = rendered.settings.base_url + "/"
    assert _site_links(client, "all") == dict.fromkeys(("rss", "atom", "json"), root)
