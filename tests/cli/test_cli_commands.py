"""The operator commands as a user runs them: real processes, a real local site, a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.services import Syndicate

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"


@pytest.fixture
def site() -> Iterator[str]:
    """The e2e fixture site as static files on 127.0.0.1."""
    with HTTPTestServer(root=SITE) as server:
        yield server.base_url


@pytest.fixture
def syn(tmp_path: Path, site: str, database_url: str) -> Syndicate:
    """A config with one listing source, two feeds and two file endpoints (one takes the back catalogue)."""
    (tmp_path / "syndicate.yaml").write_text(
        f"""
fetch: {{allow_hosts: ["127.0.0.1"]}}
sources:
  - {{name: cluster, kind: listing, url: "{site}/", options: {{link_selector: "a.post-link"}}}}
feeds:
  - {{name: all, title: All}}
  - {{name: none, title: Nothing, tags: [no-such-tag]}}
endpoints:
  - {{name: log, kind: file, path: shares.jsonl, story_window: 0}}
  - {{name: archive, kind: file, path: archive.jsonl, back_catalogue: true, story_window: 0}}
""",
        encoding="utf-8",
    )
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing below may need Redis
        },
    )


def test_scrape_prints_the_normalized_article(syn: Syndicate, site: str) -> None:
    result = syn.run("scrape", f"{site}/news/cluj-rawabi-partnership.html")
    assert result.returncode == 0, result.stderr
    article = json.loads(result.stdout)
    assert article["title"] == "Cluj IT Cluster and the Rawabi Tech Hub establish international partnership"
    assert article["published"].startswith("2019-03-06")
    assert article["categories"] == ["IT Systems"]
    assert "content_html" not in article
    assert "Share this article" not in article["content_text"]
    assert "Cluj-Napoca" in article["content_text"]


def test_scrape_refuses_hostile_and_missing_pages(syn: Syndicate, site: str) -> None:
    blocked = syn.run("scrape", "http://169.254.169.254/latest/meta-data/")
    assert blocked.returncode == 1
    assert "Traceback" not in blocked.stderr and "169.254.169.254" in blocked.stderr
    missing = syn.run("scrape", f"{site}/news/no-such-story.html")
    assert missing.returncode == 1
    assert "404" in missing.stderr and "Traceback" not in missing.stderr


def test_inline_crawl_then_feeds_and_status(syn: Syndicate, tmp_path: Path) -> None:
    crawl = syn.run("crawl", "cluster", "--inline")
    assert crawl.returncode == 0, crawl.stderr
    assert "3 articles processed" in crawl.stdout and "3 shares sent" in crawl.stdout
    # The source's first crawl is its back catalogue: only the endpoint that asked for it posts.
    assert not (tmp_path / "shares.jsonl").exists()
    assert len((tmp_path / "archive.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    again = syn.run("crawl", "cluster", "--inline")
    assert "0 articles processed" in again.stdout
    assert len((tmp_path / "archive.jsonl").read_text(encoding="utf-8").splitlines()) == 3

    build = syn.run("feeds", "build")
    assert build.returncode == 0, build.stderr
    assert "all: unchanged" in build.stdout  # the inline crawl already rendered it
    status = json.loads(syn.run("status", "--json").stdout)
    assert status["articles"]["ready"] == 3
    assert {f["name"]: f["items"] for f in status["feeds"]} == {"all": 3, "none": 0}
    counts = {
        e["name"]: (e["enabled"], e["pending"], e["sending"], e["sent"], e["failed"], e["uncertain"])
        for e in status["endpoints"]
    }
    assert counts == {"log": (True, 0, 0, 0, 0, 0), "archive": (True, 0, 0, 3, 0, 0)}
    human = syn.run("status")
    assert "cluster" in human.stdout and "share outbox: 0 pending" in human.stdout
    assert "archive" in human.stdout and "sent 3, pending 0, failed 0, uncertain 0" in human.stdout


def test_crawl_of_unknown_source_is_a_clear_error(syn: Syndicate) -> None:
    result = syn.run("crawl", "nope")
    assert result.returncode == 2
    assert "no source named 'nope'" in result.stderr and "cluster" in result.stderr
