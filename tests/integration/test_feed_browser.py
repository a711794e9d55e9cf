"""A feed opened in a real browser reads as a page (issue 16), while feed readers get the feed as before.

A real ``syndicate web`` process serves feeds rendered into its SQLite database (two pushed articles);
Debian's ``chromium``, driven by Playwright as in ``test_status_browser.py``, opens ``/feeds/all.rss``
and ``/feeds/all.atom`` and must show the page ``/feeds.xsl`` makes of them (its note and the items as
links), not the feed's source text. A feed reader's request to the same process gets
``application/rss+xml`` and the stored bytes. Without chromium the test is skipped, except under
CI=true, where it fails.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests

from config.model import load_config
from config.settings import Settings
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker import feedcache
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.render import render_current
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade

pytestmark = pytest.mark.integration

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_DB = 15
TITLES = ["Cluj and Rawabi sign a partnership", "Solar cluster opens a shared test lab"]
READER_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8"


def chromium_path() -> str | None:
    """Debian's chromium (``apt-get install chromium``), or ``$CHROMIUM``."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    return None


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path


@pytest.fixture
def web(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, Runtime]]:
    """A ``syndicate web`` process over a database holding the rendered feed ``all``; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    config_path = tmp_path / "syndicate.yaml"
    config_path.write_text(
        "sources:\n  - {name: press, kind: push}\nfeeds:\n  - {name: all, title: Partner news}\n",
        encoding="utf-8",
    )
    env = {
        "SYNDICATE_CONFIG": str(config_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'feeds.db'}",
        "REDIS_URL": redis_url,
        "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
        "SYNDICATE_HTTP_PORT": str(port),
        "SYNDICATE_PUBLIC_URL": base,
    }
    settings = Settings(
        database_url=env["DATABASE_URL"], redis_url=redis_url, var_dir=tmp_path / "var", public_url=base
    )
    upgrade(env["DATABASE_URL"])
    runtime = Runtime(settings=settings, config=load_config(config_path), base_dir=tmp_path)
    for n, title in enumerate(TITLES, start=1):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=title,
                content_html=f"<p>{title}: the two clusters will share their test labs from May.</p>",
                published=datetime(2024, 4, n, 9, 0, tzinfo=UTC),
            ),
        )
        assert process_article(runtime, article_id).status == "ready"
    assert render_current(runtime, "all")
    syn = Syndicate.make(tmp_path, env)
    try:
        wait_port(port, proc=syn.start("web", "web"))
        yield base, runtime
    finally:
        syn.stop()
        get_engine(env["DATABASE_URL"]).dispose()


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_a_feed_opened_in_chromium_shows_the_styled_page(
    web: tuple[str, Runtime], chromium: str, fmt: str
) -> None:
    from playwright.sync_api import sync_playwright

    base, runtime = web
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page()
            answer = page.goto(f"{base}/feeds/all.{fmt}")
            assert answer is not None and answer.status == 200
            assert answer.headers["content-type"] == "application/xml; charset=utf-8"
            # Elements only the XSL makes: the note, the feed's title as a heading, one link per item.
            page.wait_for_selector("p.note", timeout=10_000)
            assert "This is a web feed" in page.inner_text("p.note")
            assert page.inner_text("h1") == "Partner news"
            links = page.eval_on_selector_all("li strong a", "els => els.map(e => [e.textContent, e.href])")
            assert sorted(links) == sorted(
                [title, f"https://partner.example/news/{n}"] for n, title in enumerate(TITLES, start=1)
            )
            assert "<?xml" not in page.inner_text("body")  # not the source text
        finally:
            browser.close()

    # A feed reader asking the same process gets the feed type and the stored bytes.
    (stored,) = [r for r in feedcache.load_renders(runtime, "all") if r.fmt == fmt]
    reader = requests.get(f"{base}/feeds/all.{fmt}", headers={"Accept": READER_ACCEPT}, timeout=10)
    assert reader.headers["content-type"] == stored.content_type
    assert reader.content == stored.body


TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "default.conf.template"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def nginx_conf(tmp: Path, port: int, app_base: str, public: str, feed_root: Path) -> Path:
    """A whole nginx.conf around the deploy template, as the nginx image's envsubst would fill it."""
    server = TEMPLATE.read_text(encoding="utf-8")
    for name, value in {
        "SYNDICATE_FEED_ROOT": str(feed_root),
        "SYNDICATE_WEB_UPSTREAM": app_base.removeprefix("http://"),
        "SYNDICATE_PUBLIC_URL": public,
        "SYNDICATE_WEBSUB_HUB": "",
    }.items():
        server = server.replace("${" + name + "}", value)
    server = server.replace("listen 80;", f"listen 127.0.0.1:{port};")
    temp = "".join(
        f"  {kind}_temp_path {tmp}/nginx-{kind};\n" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        # Workers as the test's own user: pytest's directories are private to it.
        f"user {getpass.getuser()};\npid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/nginx-error.log warn;\nevents {{}}\n"
        f"http {{\n  access_log off;\n{temp}  uwsgi_temp_path {tmp}/nginx-uwsgi;\n"
        f"  scgi_temp_path {tmp}/nginx-scgi;\n{server}\n}}\n",
        encoding="utf-8",
    )
    return conf


def test_the_nginx_export_path_answers_browsers_and_readers_alike(
    web: tuple[str, Runtime], tmp_path: Path, redis_server: RedisServer
) -> None:
    """deploy/nginx serves the exported files to readers and hands browsers to the app."""
    import subprocess

    exe = shutil.which("nginx")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (python3 bootstrap.py test installs it as root)")
        pytest.skip("nginx is not installed")
    base, runtime = web
    client = redis.Redis.from_url(runtime.settings.effective_redis_url)
    assert feedcache.publish_feed(runtime, "all", client)  # the worker's export, as after a render
    client.close()
    port = free_port()
    conf = nginx_conf(tmp_path, port, base, base, runtime.settings.effective_feed_dir.parent)
    proc = subprocess.Popen([exe, "-c", str(conf), "-g", "daemon off;"], start_new_session=True)
    try:
        wait_port(port, proc=proc)
        front = f"http://127.0.0.1:{port}"
        for fmt, feed_type in (("rss", "application/rss+xml"), ("atom", "application/atom+xml")):
            (stored,) = [r for r in feedcache.load_renders(runtime, "all") if r.fmt == fmt]
            assert (runtime.settings.effective_feed_dir / f"all.{fmt}").read_bytes() == stored.body
            reader = requests.get(
                f"{front}/feeds/all.{fmt}",
                headers={"Accept": READER_ACCEPT, "Accept-Encoding": "identity"},
                timeout=10,
            )
            assert reader.status_code == 200 and reader.content == stored.body
            assert reader.headers["content-type"] == f"{feed_type}; charset=utf-8"
            # nginx's entity-tag ("mtime-size" in hex): the exported file answered, not the app.
            assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', reader.headers["etag"]), reader.headers
            assert "Accept" in [v.strip() for v in reader.headers["vary"].split(",")]
            page = requests.get(f"{front}/feeds/all.{fmt}", headers={"Accept": BROWSER_ACCEPT}, timeout=10)
            assert page.status_code == 200 and page.content == stored.body
            assert page.headers["content-type"] == "application/xml; charset=utf-8"
            assert "-page" in page.headers["etag"]  # the app's browser representation
        json_page = requests.get(f"{front}/feeds/all.json", headers={"Accept": BROWSER_ACCEPT}, timeout=10)
        assert json_page.headers["content-type"] == "application/feed+json; charset=utf-8"
        assert "Accept" not in [v.strip() for v in json_page.headers.get("vary", "").split(",")]
    finally:
        proc.terminate()
        proc.wait(10)
