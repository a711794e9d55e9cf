"""`syndicate scrape` as typed, against a real site on 127.0.0.1 whose robots.txt asks for a Crawl-delay.

The site is allowed the way a user allows it: ``fetch.allow_hosts`` in their config file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.httpserver import HTTPTestServer, Request, Response
from tests.support.services import Syndicate

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
PAGES = ("cluj-rawabi-partnership.html", "rawabi-training-institute.html")


class PoliteSite:
    """The e2e pages behind a robots.txt with ``Crawl-delay``; when each request arrived is recorded."""

    def __init__(self, server: HTTPTestServer, crawl_delay: float) -> None:
        self.server = server
        self.arrivals: list[tuple[str, float]] = []
        robots = f"User-agent: *\nCrawl-delay: {crawl_delay:g}\nDisallow: /private/\n".encode()
        server.route("/robots.txt", self._recorded(Response(200, robots, {"Content-Type": "text/plain"})))
        for name in PAGES:
            body = (SITE / "news" / name).read_bytes()
            page = Response(200, body, {"Content-Type": "text/html; charset=utf-8"})
            server.route(f"/news/{name}", self._recorded(page))

    def _recorded(self, response: Response) -> Any:
        def answer(request: Request) -> Response:
            self.arrivals.append((request.path, time.monotonic()))
            return response

        return answer


@pytest.fixture
def server() -> Iterator[HTTPTestServer]:
    with HTTPTestServer(root=None) as running:
        yield running


def _user(tmp_path: Path, fetch: str) -> Syndicate:
    """A user's config with only a ``fetch`` section, and the environment they run `syndicate` in."""
    (tmp_path / "my.yaml").write_text(f"fetch:\n{fetch}", encoding="utf-8")
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "my.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'syndicate.db'}",
            "REDIS_URL": "redis://127.0.0.1:1/0",  # scrape needs no Redis
        },
    )


def test_scrape_waits_for_the_hosts_turn_after_robots_txt(tmp_path: Path, server: HTTPTestServer) -> None:
    site = PoliteSite(server, crawl_delay=1)
    syn = _user(tmp_path, f'  allow_hosts: ["{server.host_port}"]\n  host_interval: 0.2s\n')
    urls = [server.url(f"/news/{name}") for name in PAGES]
    result = syn.run("scrape", *urls)
    assert result.returncode == 0, result.stderr
    articles = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a.get("error") for a in articles] == [None, None]
    assert articles[0]["title"].startswith("Cluj IT Cluster and the Rawabi Tech Hub")
    assert "Traceback" not in result.stderr
    # robots.txt first, then each page, one Crawl-delay apart: the command waited, it did not skip.
    assert [path for path, _ in site.arrivals] == ["/robots.txt", *(f"/news/{n}" for n in PAGES)]
    gaps = [later - earlier for (_, earlier), (_, later) in zip(site.arrivals, site.arrivals[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert "waiting" in result.stderr and "for the host's turn" in result.stderr


def test_scrape_waits_under_the_host_interval_alone(tmp_path: Path, server: HTTPTestServer) -> None:
    server.route("/robots.txt", Response(200, b"User-agent: *\nAllow: /\n", {"Content-Type": "text/plain"}))
    body = (SITE / "news" / PAGES[0]).read_bytes()
    server.content(f"/news/{PAGES[0]}", body)
    syn = _user(tmp_path, f'  allow_hosts: ["{server.host_port}"]\n  host_interval: 0.2s\n')
    result = syn.run("scrape", server.url(f"/news/{PAGES[0]}"))
    assert result.returncode == 0, result.stderr
    assert "error" not in json.loads(result.stdout)


def test_scrape_of_a_file_path_points_to_saved(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes((SITE / "news" / PAGES[0]).read_bytes())
    syn = _user(tmp_path, "  robots: true\n")
    result = syn.run("scrape", "page.html")
    assert result.returncode == 2
    assert "--saved page.html URL" in result.stderr
    assert "scheme" not in result.stderr and result.stdout == ""
    bare = syn.run("scrape", "example.org/news/")
    assert bare.returncode == 2 and "not a URL" in bare.stderr and "https://" in bare.stderr


def test_scrape_of_a_loopback_site_not_allowed_names_the_setting(
    tmp_path: Path, server: HTTPTestServer
) -> None:
    PoliteSite(server, crawl_delay=0)
    syn = _user(tmp_path, "  robots: true\n")
    result = syn.run("scrape", server.url(f"/news/{PAGES[0]}"))
    assert result.returncode == 1
    assert f'add "{server.host_port}" to fetch.allow_hosts' in result.stderr, result.stderr
    assert json.loads(result.stdout)["error"].startswith("host '127.0.0.1' resolves to a loopback address")


def test_scrape_with_a_bad_config_is_a_config_error(tmp_path: Path, server: HTTPTestServer) -> None:
    PoliteSite(server, crawl_delay=0)
    syn = _user(tmp_path, "  host_interval: 0s\n")
    result = syn.run("scrape", server.url(f"/news/{PAGES[0]}"), server.url(f"/news/{PAGES[1]}"))
    assert result.returncode == 3, result.stderr
    assert "fetch.host_interval" in result.stderr and result.stdout == ""
    assert server.requests == []
