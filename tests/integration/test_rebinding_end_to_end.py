"""DNS rebinding through real processes: a pushed URL and a crawl never reach the internal server.

``syndicate web`` and ``syndicate worker`` run with a resolver of our own (tests/support/rebinding.py,
installed at start-up through ``sitecustomize`` on ``PYTHONPATH``) that answers each ``rb-*.test``
name with 127.0.0.2 a few times and with 127.0.0.1 from then on, as an attacker's DNS server with a
TTL of 0 would. 127.0.0.2 stands for the public address the name claims (``fetch.allow_hosts``
admits it, as the guard admits any public address) and serves an ordinary article; 127.0.0.1, on
the same port, is the "internal" service, which records every request and must see none, whichever
lookup the answer switches on: the ingest API's check, the page's check, robots.txt's check or
connection. The same holds for a crawl source whose listing links to such a name, redirects to one,
or is one itself. Every such article fails with a reason that names the loopback address, unless the
switch comes only after the connection was made: then the page comes from the checked address.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.pipeline.sitegen import Story
from tests.support.httpserver import HTTPTestServer, Response
from tests.support.rebinding import Recorder, logged_answers, process_env
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.store.db import get_engine
from worker.store.models import Article, Source

# One module-wide rig: its tests stay in one test process (bootstrap.py test runs --dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("test_rebinding_end_to_end")]

TOKEN = "rebinding-e2e-token"
STAND_IN = "127.0.0.2"
WAIT = 60.0
# How many answers of 127.0.0.2 before 127.0.0.1 for good, per name (the web process and the
# worker each count their own lookups).
SCRIPT = {
    "rb-push1.test": [STAND_IN, "127.0.0.1"],  # the worker's second lookup: robots.txt's check
    "rb-push2.test": [STAND_IN, STAND_IN, "127.0.0.1"],  # robots.txt's connection
    "rb-push3.test": [STAND_IN, STAND_IN, STAND_IN, "127.0.0.1"],  # after robots.txt's connection
    "rb-link.test": [STAND_IN, STAND_IN, "127.0.0.1"],  # linked from a partner's listing
    "rb-hop.test": [STAND_IN, STAND_IN, "127.0.0.1"],  # a partner's redirect target
    "rb-src.test": [STAND_IN, "127.0.0.1"],  # a source's own URL
}


@dataclass
class Rig:
    syn: Syndicate
    web: str
    database_url: str
    internal: Recorder
    public: Recorder
    partner: HTTPTestServer
    log: Path

    def url(self, name: str, path: str) -> str:
        return f"http://{name}:{self.internal.port}{path}"

    def articles(self) -> dict[str, Article]:
        with Session(get_engine(self.database_url)) as session:
            rows = session.scalars(select(Article)).all()
            session.expunge_all()
        return {row.url: row for row in rows}

    def source(self, name: str) -> Source:
        with Session(get_engine(self.database_url)) as session:
            row = session.scalars(select(Source).where(Source.name == name)).one()
            session.expunge_all()
        return row

    def wait(self, what: str, done: object) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if callable(done) and done():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}\n{self.syn.logs()}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("rebinding-e2e")
    page = Story("public-page", "The public page the name claims to be").html().encode()
    internal = Recorder("127.0.0.1", body=b"<html><body><p>INTERNAL-SECRET status page</p></body></html>")
    public = Recorder(STAND_IN, internal.port, body=page)
    partner = HTTPTestServer(root=None).start()
    port = internal.port
    links = (
        f'<li><a class="post-link" href="http://rb-link.test:{port}/secret-link.html">Linked</a></li>'
        '<li><a class="post-link" href="/go">Redirected</a></li>'
    )
    partner.route(
        "/news/",
        lambda _request: Response(
            200, f"<html><body><ul>{links}</ul></body></html>".encode(), {"Content-Type": "text/html"}
        ),
    )
    partner.redirect("/go", f"http://rb-hop.test:{port}/secret-hop.html")
    redis_server = RedisServer().start()
    log = tmp / "resolver.log"
    (tmp / "syndicate.yaml").write_text(
        f'api: {{token: "${{REBIND_API_TOKEN}}"}}\n'
        f'fetch: {{allow_hosts: ["{partner.host_port}", "{STAND_IN}"], timeout: 5s}}\n'
        "sources:\n"
        f'  - {{name: partner, kind: listing, url: "{partner.url("/news/")}", schedule: 1d,'
        ' options: {link_selector: "a.post-link", link_pattern: "secret|/go"}}\n'
        f'  - {{name: rebinder, kind: listing, url: "http://rb-src.test:{port}/news/", schedule: 1d}}\n'
        "feeds: [{name: all, title: All}]\n",
        encoding="utf-8",
    )
    http_port = free_port()
    database_url = f"sqlite:///{tmp / 'syndicate.db'}"
    syn = Syndicate.make(
        tmp,
        {
            "SYNDICATE_CONFIG": str(tmp / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "SYNDICATE_VAR_DIR": str(tmp / "var"),
            "SYNDICATE_HTTP_PORT": str(http_port),
            "REBIND_API_TOKEN": TOKEN,
            **process_env(SCRIPT, log),
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    try:
        syn.start("worker", "worker", "--concurrency", "1", "--hostname", "rebind@%h")
        web = syn.start("web", "web")
        wait_port(http_port, 30, web)
        rig = Rig(syn, f"http://127.0.0.1:{http_port}", database_url, internal, public, partner, log)
        rig.wait("the worker", lambda: " ready." in (tmp / "worker.log").read_text(errors="replace"))
        yield rig
    finally:
        syn.stop()
        get_engine(database_url).dispose()
        for server in (internal, public):
            server.close()
        partner.stop()
        redis_server.stop()


def _settled(rig: Rig, urls: list[str]) -> bool:
    found = rig.articles()
    return all(url in found and found[url].status != "pending" for url in urls)


def test_pushed_urls_that_rebind_never_reach_the_internal_server(rig: Rig) -> None:
    urls = [
        rig.url(name, f"/secret-{name.split('.')[0]}.html")
        for name in ("rb-push1.test", "rb-push2.test", "rb-push3.test")
    ]
    for url in urls:
        answer = requests.post(
            f"{rig.web}/api/articles",
            json={"url": url},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text  # the web process's own lookup saw 127.0.0.2
    rig.wait("the pushed articles to settle", lambda: _settled(rig, urls))
    found = rig.articles()
    for url in urls[:2]:
        assert found[url].status == "failed", (url, found[url].status, found[url].error)
        error = found[url].error or ""
        assert "robots.txt was refused" in error, error
        assert "resolves to a loopback address 127.0.0.1" in error, error
    # rb-push3.test rebinds only after robots.txt came over a connection pinned to 127.0.0.2; the
    # page went over that same connection, so it is the public page, fetched by its name.
    assert found[urls[2]].status == "ready", (found[urls[2]].status, found[urls[2]].error)
    assert found[urls[2]].title == "The public page the name claims to be"
    port = rig.internal.port
    assert [(r.path, r.host) for r in rig.public.requests() if "push3" in r.host] == [
        ("/robots.txt", f"rb-push3.test:{port}"),
        ("/secret-rb-push3.html", f"rb-push3.test:{port}"),
    ]
    assert rig.internal.requests() == []
    answers = logged_answers(rig.log)
    for name in ("rb-push1.test", "rb-push2.test"):  # the worker really was told 127.0.0.1
        assert any(n == name and a == "127.0.0.1" for _, n, a in answers), (name, answers)


def test_a_crawl_never_reaches_the_internal_server_through_links_redirects_or_its_own_url(rig: Rig) -> None:
    for source in ("partner", "rebinder"):
        started = rig.syn.run("crawl", source, timeout=60)
        assert started.returncode == 0, started.stderr
    urls = [rig.url("rb-link.test", "/secret-link.html"), rig.partner.url("/go")]
    rig.wait("the crawled articles to settle", lambda: _settled(rig, urls))
    rig.wait("the rebinding source's crawl to fail", lambda: rig.source("rebinder").last_error is not None)
    found = rig.articles()
    for url in urls:
        assert found[url].status == "failed", (url, found[url].status, found[url].error)
        assert "resolves to a loopback address 127.0.0.1" in (found[url].error or ""), found[url].error
    assert "rb-hop.test" in (found[urls[1]].error or "")
    assert "loopback address 127.0.0.1" in (rig.source("rebinder").last_error or "")
    assert rig.internal.requests() == []
    assert [r.path for r in rig.partner.requests if r.path != "/robots.txt"] == ["/news/", "/go"]
    answers = logged_answers(rig.log)
    for name in ("rb-link.test", "rb-hop.test", "rb-src.test"):
        assert any(n == name and a == "127.0.0.1" for _, n, a in answers), (name, answers)
