"""Security headers on every answer: nosniff, no referrer, no framing, and a Content-Security-Policy
that is ``default-src 'none'`` for JSON and fitted by hash to each HTML page's own inline code.

The policy is checked twice: in the headers (TestClient), and in a real headless Chromium against a
real uvicorn server, where the status page, Swagger UI and a feed's XSL view must render with their
styles and scripts applied and without a single CSP violation reported.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

from config.model import parse_config
from config.settings import Settings
from tests.integration.test_status_browser import chromium_path
from tests.support.services import free_port
from worker.ingest import PushedArticle, ingest_article
from worker.process import mark_article_failed, process_article
from worker.render import render_and_publish
from worker.runtime import Runtime
from worker.web.app import create_web_app, server_options

TOKEN = "web-test-token"  # tests/web/conftest.py
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _policy(resp: Any) -> dict[str, list[str]]:
    csp = resp.headers.get("content-security-policy")
    assert csp, (resp.request.url, dict(resp.headers))
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def _common(resp: Any) -> None:
    assert resp.headers.get("x-content-type-options") == "nosniff", (resp.request.url, dict(resp.headers))
    assert resp.headers.get("referrer-policy") == "no-referrer"
    assert _policy(resp)["frame-ancestors"] == ["'none'"]


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _publish(runtime: Runtime) -> None:
    """One ready article, one failed (a retry button, so the page's script is there), feeds published."""
    ids = []
    for n in (1, 2):
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url=f"https://partner.example/news/{n}",
                title=f"Story <{n}>",
                content_html=f"<p>Story {n} tells of a partnership between the two clusters.</p>",
                published=datetime(2024, 4, n, 9, 0, tzinfo=UTC),
                category="IT Systems",
            ),
        )
        ids.append(article_id)
    assert process_article(runtime, ids[0]).status == "ready"
    mark_article_failed(runtime, ids[1], RuntimeError("HTTP 500 from partner.example"))
    client = redis.Redis.from_url(runtime.settings.effective_redis_url)
    try:
        assert render_and_publish(runtime, "all", client)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/status", AUTH),
        ("GET", "/healthz", {}),
        ("GET", "/api/openapi.json", {}),
        ("GET", "/api/no-such-thing", AUTH),
        ("POST", "/api/articles", {}),  # refused by the gate before routing
        ("POST", "/api/articles", {**AUTH, "Content-Length": "999999999"}),  # refused by the body limit
        ("GET", "/feeds.opml", {}),
    ],
)
def test_json_and_other_answers_may_load_nothing(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    resp = client.request(method, path, headers=headers)
    _common(resp)
    policy = _policy(resp)
    assert policy["default-src"] == ["'none'"] and "script-src" not in policy and "style-src" not in policy


def test_status_page_policy_allows_exactly_its_own_inline_code(
    client: TestClient, runtime: Runtime, broker: Any
) -> None:
    _publish(runtime)
    resp = client.get("/", headers=AUTH)
    assert resp.status_code == 200
    _common(resp)
    policy = _policy(resp)
    doc = lxml.html.fromstring(resp.text)
    scripts = [s.text for s in doc.xpath("//script[not(@src)]")]
    styles = [s.text for s in doc.xpath("//style")]
    assert scripts and styles and doc.xpath("//button[@data-retry]")
    assert policy["script-src"] == ["'self'", *map(_sha256, scripts)]
    assert policy["style-src"] == ["'self'", *map(_sha256, styles)]
    assert "'unsafe-inline'" not in resp.headers["content-security-policy"]
    assert policy["default-src"] == ["'none'"] and policy["connect-src"] == ["'self'"]
    assert not doc.xpath("//*[@style or @onclick or @onload]")  # attributes no hash can allow


def test_feeds_and_docs_carry_their_policies(client: TestClient, runtime: Runtime, broker: Any) -> None:
    _publish(runtime)
    feed = client.get("/feeds/all.rss")  # the fast path: prebuilt headers, no routing
    assert feed.status_code == 200
    _common(feed)
    from feeds.stylesheet import STYLESHEET

    [style] = lxml.etree.fromstring(STYLESHEET.encode()).xpath("//style")
    assert _policy(feed)["style-src"] == [_sha256(style.text)]
    assert _policy(feed)["script-src"] == ["'self'"]  # the XSL stylesheet, same origin
    assert client.get("/feeds/all.json").headers["content-security-policy"].startswith("default-src 'none'")
    docs = client.get("/api/docs")
    _common(docs)
    [init] = lxml.html.fromstring(docs.text).xpath("//script[not(@src)]")
    assert _policy(docs)["script-src"] == ["'self'", _sha256(init.text)]


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium): the CSP browser test cannot run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def served(
    database_url: str, tmp_path: Path, redis_url: str, broker: Any, make_runtime: Any
) -> Iterator[tuple[str, Runtime]]:
    """The real app on a real uvicorn server whose public URL is itself (feeds link their XSL there).

    (``make_runtime`` migrates the test database; the runtime is built here for its public URL.)
    """
    from tests.web.conftest import web_config

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=database_url, redis_url=redis_url, var_dir=tmp_path / "var", public_url=base
    )
    runtime = Runtime(
        settings=settings,
        config=parse_config(web_config(), lookup={"WEB_API_TOKEN": TOKEN}.get),
        base_dir=tmp_path,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_web_app(runtime), host="127.0.0.1", port=port, **server_options("warning"))
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield base, runtime
    server.should_exit = True
    thread.join(10)


# Every securitypolicyviolation event, with the element it was about, as a console line.
REPORT_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', e => console.warn('CSP-VIOLATION', "
    "e.effectiveDirective, e.target && e.target.localName, e.sample))"
)
# Chromium's own XSLT deprecation banner, which it adds to every XSLT view with style and onclick
# attributes: no policy short of 'unsafe-inline' (for the browser's UI) lets those through.
BROWSER_BANNER = "xslt-warning-banner"


def test_pages_render_in_chromium_without_a_csp_violation(served: tuple[str, Runtime], chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    base, runtime = served
    _publish(runtime)
    console: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_context(extra_http_headers=AUTH).new_page()
            page.add_init_script(REPORT_VIOLATIONS)
            page.on("console", lambda m: console.setdefault(page.url, []).append(m.text))
            page.on("pageerror", lambda exc: console.setdefault(page.url, []).append(f"page error: {exc}"))

            page.goto(f"{base}/")
            # The inline style applied (body max-width 72rem) and the inline script ran (a retry answered).
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "1152px"
            page.on("dialog", lambda dialog: dialog.accept(TOKEN))
            page.locator("#failed-articles tr[data-article] button").click()
            page.locator("#failed-articles .said").filter(has_text="queued").wait_for(timeout=10_000)

            page.goto(f"{base}/api/docs")
            page.locator(".opblock").first.wait_for(timeout=15_000)  # the bundle and the inline init ran
            assert page.evaluate("getComputedStyle(document.querySelector('.opblock')).borderRadius") != "0px"

            # A feed as a browser shows it through the XSL: served as XML, with our headers as sent.
            policies: list[str] = []

            def as_xml(route: Any) -> None:
                answer = route.fetch()
                policies.append(answer.headers["content-security-policy"])
                route.fulfill(response=answer, headers={**answer.headers, "content-type": "application/xml"})

            page.route(f"{base}/feeds/all.rss", as_xml)
            page.goto(f"{base}/feeds/all.rss")
            page.locator("h1").wait_for(timeout=10_000)
            assert policies and "style-src 'sha256-" in policies[0], policies
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "736px"  # 46rem: styled
        finally:
            browser.close()
    for url, lines in console.items():
        blocked = [line for line in lines if "Content Security Policy" in line]
        events = [line.split() for line in lines if line.startswith("CSP-VIOLATION")]
        # Each violation the browser logged was an event here, about the browser's banner only.
        assert len(events) == len(blocked), (url, lines)
        assert all(event[2] == BROWSER_BANNER for event in events), (url, lines)
        assert not [line for line in lines if line.startswith("page error")], (url, lines)
