"""The status page, Swagger UI and Flower in a real headless browser after a real run with failures.

Real Redis, real ``syndicate`` worker (with task events), beat, web and Flower (``syndicate monitor``
with basic auth) processes; a real site on 127.0.0.1 with one article answering 500 (its task gives
up after its retries), a second site whose listing answers 500 (a failing source) and two endpoints:
a file archive that works and a webhook answering 400 (every share fails). Debian's ``chromium``
is driven by Playwright (``executable_path``, no browser download). The status page must list the
sources, feeds and endpoints with the right counts and the failures with their reasons, its retry
button must work with a token typed once, ``/api/docs`` must render with every request to anything
but this machine blocked, and Flower must list the given-up tasks as FAILURE.

Screenshots are kept in ``$ARTIFACTS_DIR`` (default ``var/test-artifacts/status-browser``).
Without chromium the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import ast
import base64
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests

from tests.support.httpserver import HTTPTestServer
from tests.support.services import ROOT, RedisServer, Syndicate, free_port, wait_port

pytestmark = pytest.mark.integration

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
BROKEN_ARTICLE = "/news/rawabi-training-institute.html"
TOKEN = "browser-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # the status is behind the token (no api.public_status)
SECRET = "whsec_" + base64.b64encode(b"status-browser-test-secret-32by!").decode()
FLOWER_USER, FLOWER_PASSWORD = "ops", "flower-test-password"
REDIS_DBS = {"sqlite": 6, "postgresql": 13}  # others use 1-5, 7-12, 14
# Retry countdowns are capped at half the visibility timeout: 20 s makes five retries take ~35 s.
# (At 10 s the sweep's in-flight markers, which live as long as the visibility timeout, expired
# between retries and the sweep sent the article a second time.)
VISIBILITY_TIMEOUT = 20


def chromium_path() -> str | None:
    """Debian's chromium (``apt-get install chromium``), or ``$CHROMIUM``."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    return None


def artifacts_dir(name: str) -> Path:
    """Where screenshots go: ``$ARTIFACTS_DIR/<name>`` or ``var/test-artifacts/<name>`` (gitignored)."""
    base = (
        Path(os.environ["ARTIFACTS_DIR"])
        if os.environ.get("ARTIFACTS_DIR")
        else ROOT / "var" / "test-artifacts"
    )
    path = base / "status-browser" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; a skip without one, a failure under CI."""
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium): the browser test cannot run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


class RefusingHook:
    """A webhook receiver that refuses every post with 400 and counts them."""

    def __init__(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.calls += 1
                body = b'{"error": "text rejected by the partner"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.calls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> RefusingHook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _write_config(path: Path, site: str, broken_site: str, hook: str) -> None:
    path.write_text(
        f"""
api:
  token: ${{BROWSER_API_TOKEN}}
fetch:
  allow_hosts: ["127.0.0.1"]
  timeout: 3s
sources:
  - name: cluster
    kind: listing
    url: {site}/
    schedule: 1h
    options:
      link_selector: "a.post-link"
  - name: broken
    kind: listing
    url: {broken_site}/news/
    schedule: 1h
feeds:
  - name: all
    title: All partner news
  - name: it
    title: IT Systems
    categories: ["IT Systems"]
endpoints:
  - name: archive
    kind: file
    path: shares.jsonl
    back_catalogue: true
    story_window: 0
  - name: partner-hook
    kind: webhook
    url: {hook}
    secret: ${{BROWSER_WEBHOOK_SECRET}}
    back_catalogue: true
    story_window: 0
""",
        encoding="utf-8",
    )


def _wait(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except requests.RequestException as exc:
            last = exc
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs()}")


def _flower_failures(flower: str) -> dict[str, dict[str, Any]]:
    resp = requests.get(
        f"{flower}/api/tasks", params={"state": "FAILURE"}, auth=(FLOWER_USER, FLOWER_PASSWORD), timeout=5
    )
    resp.raise_for_status()
    return dict(resp.json())


def _only_local(route: Any) -> None:
    """Playwright route handler: anything not on 127.0.0.1 is refused (the offline proof)."""
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def test_status_page_and_flower_show_the_failures(
    tmp_path: Path,
    database_url: str,
    redis_server: RedisServer,
    chromium: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright.sync_api import sync_playwright

    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DBS[backend]}"
    redis.Redis.from_url(redis_url).flushdb()
    shots = artifacts_dir(backend)

    with (
        HTTPTestServer(root=SITE) as site,
        HTTPTestServer(root=None) as broken,
        RefusingHook() as hook,
    ):
        site.status(BROKEN_ARTICLE, 500, body=b"upstream exploded")
        broken.status("/news/", 500, body=b"listing exploded")

        _write_config(tmp_path / "syndicate.yaml", site.base_url, broken.base_url, hook.url)
        port, flower_port = free_port(), free_port()
        syn = Syndicate.make(
            tmp_path,
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SYNDICATE_HTTP_PORT": str(port),
                "SYNDICATE_FLOWER_PORT": str(flower_port),
                # Not loopback-only, so the password is required (and given).
                "SYNDICATE_FLOWER_HOST": "0.0.0.0",
                "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
                "SYNDICATE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
                "BROWSER_API_TOKEN": TOKEN,
                "BROWSER_WEBHOOK_SECRET": SECRET,
            },
        )
        migrated = syn.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        base, flower = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{flower_port}"
        try:
            # Flower first: it only knows the tasks whose events it receives.
            wait_port(flower_port, 30, syn.start("flower", "monitor"))
            syn.start("worker", "worker", "--events", "--concurrency", "2")
            syn.start("beat", "beat")
            wait_port(port, 30, syn.start("web", "web"))
            assert requests.get(f"{flower}/api/tasks", timeout=5).status_code == 401  # no password, no Flower

            def settled() -> dict[str, Any] | None:
                snap = requests.get(f"{base}/api/status", headers=AUTH, timeout=5).json()
                ends = {e["name"]: e for e in snap["endpoints"]}
                sources = {s["name"]: s for s in snap["sources"]}
                done = (
                    snap["articles"].get("ready") == 2
                    and snap["articles"].get("failed") == 1
                    and ends["archive"]["sent"] == 2
                    and ends["partner-hook"]["failed"] == 2
                    and sources["broken"]["state"] in ("failing", "backing off")
                )
                return snap if done else None

            snap = _wait("the run to settle", settled, 90, syn.logs)
            failed_ids = _wait(
                "Flower to list the failures",
                lambda: (
                    {t["name"] for t in _flower_failures(flower).values()}
                    >= {"syndicate.process_article", "syndicate.deliver_share"}
                ),
                30,
                syn.logs,
            )
            assert failed_ids
            _check_snapshot(snap, site.base_url)
            _check_worker_log_and_no_redelivery(tmp_path, syn, site, redis_url, base)
            flower_tasks = _check_flower_api(flower, snap)

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True)
                try:
                    saved = _browse_status_page(browser, base, site, hook, shots)
                    saved += _browse_docs(browser, base, shots)
                    saved += _browse_flower(browser, flower, flower_tasks, shots)
                finally:
                    browser.close()
        finally:
            syn.stop()
    with capsys.disabled():
        print(f"\nstatus browser screenshots ({backend}):")
        for path in saved:
            print(f"  {path}")
    assert all(p.stat().st_size > 5_000 for p in saved), saved


def _check_snapshot(snap: dict[str, Any], site: str) -> None:
    """The JSON the page is drawn from: counts, reasons and liveness."""
    sources = {s["name"]: s for s in snap["sources"]}
    assert sources["cluster"]["articles"] == 2 and sources["cluster"]["failed_articles"] == 1
    assert sources["cluster"]["state"] == "ok" and sources["cluster"]["next_run_at"]
    assert "500" in sources["broken"]["last_error"] and sources["broken"]["failing_since"]
    [article] = snap["failures"]["articles"]
    # Fetches: a run rescheduled by the host's politeness budget is no attempt.
    assert article["url"] == site + BROKEN_ARTICLE and article["attempts"] >= 6, article
    assert "500" in article["error"], article
    shares = snap["failures"]["shares"]
    assert {s["endpoint"] for s in shares} == {"partner-hook"} and len(shares) == 2
    assert all("400" in (s["error"] or "") for s in shares), shares
    feeds = {f["name"]: f for f in snap["feeds"]}
    assert feeds["all"]["items"] == 2 and feeds["it"]["items"] == 2
    assert snap["liveness"]["worker_state"] == "ok" and snap["liveness"]["beat_state"] == "ok", snap[
        "liveness"
    ]


def _our_give_up_line(line: str) -> bool:
    """worker.tasks' own ERROR line (Celery's "raised expected" line repeats the reason)."""
    return "gave up after 6 attempts" in line and "ERROR" in line and "raised expected" not in line


def _check_worker_log_and_no_redelivery(
    tmp: Path, syn: Syndicate, site: HTTPTestServer, redis_url: str, base: str
) -> None:
    """The worker says why it gave up; the acked message is never delivered again.

    (The sweep may have sent the article a second message while a retry was pending, a separate
    task with its own id that gives up the same way: see the report of issue 9. Each give-up is
    checked per task id, and nothing may come back once the visibility timeout has passed.)
    """
    log = (tmp / "worker.log").read_text(errors="replace", encoding="utf-8")
    gave_up = [ln for ln in log.splitlines() if _our_give_up_line(ln)]
    assert gave_up and all("syndicate.process_article" in ln and "500" in ln for ln in gave_up), gave_up
    assert "raised expected: GaveUp" in log, log[-4000:]
    # Celery logs the expected GaveUp at INFO, one line; no ERROR with a traceback from Celery itself.
    assert not [ln for ln in log.splitlines() if "celery.app.trace" in ln and "ERROR" in ln], log[-4000:]
    status_url = f"{base}/api/status"

    def window() -> tuple[int, int, int]:
        """(fetches of the broken page, give-up lines, the article's runs) now."""
        text = (tmp / "worker.log").read_text(errors="replace", encoding="utf-8")
        runs = requests.get(status_url, headers=AUTH, timeout=5).json()["failures"]["articles"][0]["attempts"]
        return (
            len(site.requests_to(BROKEN_ARTICLE)),
            sum(_our_give_up_line(ln) for ln in text.splitlines()),
            runs,
        )

    # Quiet for longer than the visibility timeout (plus kombu's restore interval): an unacked
    # message would have come back, and any live retry chain (countdowns <= half of it) fetched.
    deadline = time.monotonic() + 150
    before = window()
    while True:
        time.sleep(VISIBILITY_TIMEOUT + 3)
        after = window()
        if after == before and after[0] == 6 * after[1]:  # each task: the first try and five retries
            break
        assert time.monotonic() < deadline, (before, after, syn.logs())
        before = after
    # Nothing stays unacked: a periodic task beat sent (the sweep, the settling) may be running at this
    # very moment, and is acked within a moment; a message left behind would stay.
    client = redis.Redis.from_url(redis_url)
    settle = time.monotonic() + 10
    while client.hlen("unacked") and time.monotonic() < settle:
        time.sleep(0.2)
    assert client.hlen("unacked") == 0, client.hgetall("unacked")


def _check_flower_api(flower: str, snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tasks = _flower_failures(flower)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for uuid, task in tasks.items():
        by_name.setdefault(task["name"], []).append({**task, "uuid": uuid})
    article_id = snap["failures"]["articles"][0]["id"]
    given_up = by_name["syndicate.process_article"]
    for process in given_up:
        assert process["state"] == "FAILURE" and process["retries"] == 5, process
        # argsrepr: the ids, then the story in words (tasks still receive the id alone).
        ids, _, label = process["args"].partition(" ")
        assert ast.literal_eval(ids) == (article_id,), process["args"]
        assert label == f"article {snap['failures']['articles'][0]['url']}", process["args"]
        assert "GaveUp" in process["exception"] and "gave up after 6 attempts" in process["exception"]
    process = given_up[0]
    shares = by_name["syndicate.deliver_share"]
    assert len(shares) == 2 and all("400" in t["exception"] for t in shares), shares
    return {"process": process, "share": shares[0]}


def _browse_status_page(
    browser: Any, base: str, site: HTTPTestServer, hook: RefusingHook, shots: Path
) -> list[Path]:
    # The status is behind the token: the browser signs in with it as the password (Basic).
    signed_in = {"username": "ops", "password": TOKEN}
    desktop = browser.new_context(viewport={"width": 1366, "height": 900}, http_credentials=signed_in)
    desktop.route("**/*", _only_local)
    page = desktop.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{base}/")
    page.locator("#failed-shares tr[data-share]").first.wait_for()
    saved = [shots / "status-desktop.png"]
    page.screenshot(path=str(saved[-1]), full_page=True)
    desktop.close()

    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        http_credentials=signed_in,
    )
    phone.route("**/*", _only_local)
    page = phone.new_page()
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{base}/")
    assert page.title() == "Syndicate status"
    # Readable on a phone: the page itself does not scroll sideways (tables do, inside their box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    cells = lambda selector: [  # noqa: E731
        [" ".join(c.split()) for c in row.locator("td").all_inner_texts()]
        for row in page.locator(selector).all()
    ]
    sources = {row[0]: row for row in cells("#sources tr[data-source]")}
    assert sources["cluster"][2:6] == ["ok", "2", "2", "1"], sources
    assert sources["broken"][2] in ("failing", "backing off") and "500" in sources["broken"][8], sources
    feeds = {row[0]: row for row in cells("#feeds tr[data-feed]")}
    assert feeds["All partner news"][1] == "2" and feeds["IT Systems"][1] == "2", feeds
    ends = {row[0]: row for row in cells("#endpoints tr[data-endpoint]")}
    # endpoint, kind, sent today, sent, failed, uncertain, skipped, backlog
    assert ends["archive"][2:8] == ["2", "2", "0", "0", "0", "0"], ends
    assert ends["partner-hook"][2:8] == ["0", "0", "2", "0", "0", "0"], ends
    assert "400" in ends["partner-hook"][10]
    [article] = cells("#failed-articles tr[data-article]")
    assert article[2].endswith(BROKEN_ARTICLE) and "500" in article[3], article
    shares = cells("#failed-shares tr[data-share]")
    assert len(shares) == 2 and all(row[1] == "partner-hook" and "400" in row[4] for row in shares), shares
    summary = page.locator("#summary").inner_text()
    assert "worker: ok" in summary and "beat: ok" in summary, summary
    title = page.locator("#sources tr[data-source='cluster'] time").first.get_attribute("title")
    assert title and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", title), title
    # On a phone each cell is a label beside its value: no word of a value is split over two lines
    # (a flex cell made every text node its own narrow item: "since" read "sin / ce"). Tokens longer
    # than 20 characters (URLs, JSON) may wrap anywhere.
    split = page.evaluate(
        """() => {
          const out = [];
          const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const m of node.data.matchAll(/\\S+/g)) {
              if (m[0].length < 2 || m[0].length > 20) continue;
              const range = document.createRange();
              range.setStart(node, m.index);
              range.setEnd(node, m.index + m[0].length);
              if (range.getClientRects().length > 1) out.push(m[0]);
            }
          }
          return out;
        }"""
    )
    assert split == [], split
    saved.append(shots / "status-phone.png")
    page.screenshot(path=str(saved[-1]), full_page=True)

    # The retry button: asks for the token once, keeps it for the tab, posts, says "queued".
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept(TOKEN)

    page.on("dialog", answer)
    hook_calls = hook.calls
    row = page.locator("#failed-shares tr[data-share]").first
    row.locator("button").click()
    row.locator(".said").filter(has_text="queued").wait_for(timeout=10_000)
    assert len(asked) == 1 and "token" in asked[0].lower()
    assert page.evaluate("sessionStorage.getItem('syndicate-admin-token')") == TOKEN
    assert TOKEN not in page.content()
    deadline = time.monotonic() + 20
    while hook.calls == hook_calls and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hook.calls == hook_calls + 1  # sent again (and refused again)
    # The article retry uses the stored token (no second prompt); the page is back, so it succeeds.
    story = (SITE / BROKEN_ARTICLE.lstrip("/")).read_bytes().replace(b"{{BASE_URL}}", site.base_url.encode())
    site.content(BROKEN_ARTICLE, story)
    page.locator("#failed-articles tr[data-article] button").click()
    page.locator("#failed-articles .said").filter(has_text="queued").wait_for(timeout=10_000)
    assert len(asked) == 1

    def recovered() -> bool:
        snap = requests.get(f"{base}/api/status", headers=AUTH, timeout=5).json()
        feeds = {f["name"]: f for f in snap["feeds"]}
        # The feed render follows the article's commit asynchronously, so wait for both.
        return (
            snap["articles"].get("ready") == 3
            and not snap["failures"]["articles"]
            and feeds["all"]["items"] == 3
        )

    _wait("the retried article to be ready and in the feed", recovered, 30, lambda: "")
    page.reload()
    assert page.locator("#failed-articles-empty").inner_text() == "no failed articles"
    assert page.locator("#feeds tr[data-feed='all'] td").nth(1).inner_text() == "3"
    saved.append(shots / "status-phone-after-retry.png")
    page.screenshot(path=str(saved[-1]), full_page=True)
    phone.close()
    # The Content-Security-Policy (hashes of the page's own inline code) blocked nothing.
    assert not [m for m in console if "Content Security Policy" in m], console
    return saved


def _browse_docs(browser: Any, base: str, shots: Path) -> list[Path]:
    """Swagger UI renders every operation with nothing but this machine reachable."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", _only_local)
    page = context.new_page()
    refused: list[str] = []
    page.on("requestfailed", lambda request: refused.append(request.url))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{base}/api/docs")
    page.locator(".opblock").first.wait_for(timeout=15_000)
    shown = page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)")
    for path in (
        "/api/articles",
        "/api/status",
        "/api/shares/{share_id}/retry",
        "/api/articles/{article_id}/retry",
    ):
        assert path in shown, (path, shown)
    assert refused == [], refused
    assert not [m for m in console if "Content Security Policy" in m], console
    saved = shots / "api-docs.png"
    page.screenshot(path=str(saved), full_page=False)
    context.close()
    return [saved]


def _browse_flower(browser: Any, flower: str, tasks: dict[str, dict[str, Any]], shots: Path) -> list[Path]:
    """Flower's task list and the given-up task's page show FAILURE with the reason."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900},
        http_credentials={"username": FLOWER_USER, "password": FLOWER_PASSWORD},
    )
    context.route("**/*", _only_local)
    page = context.new_page()
    page.goto(f"{flower}/tasks")
    page.locator("#tasks-table tbody tr", has_text="FAILURE").first.wait_for(timeout=15_000)
    rows = page.locator("#tasks-table tbody tr", has_text="FAILURE")
    assert rows.count() >= 3, page.locator("#tasks-table").inner_text()
    assert (
        page.locator("#tasks-table tbody tr", has_text="syndicate.process_article")
        .filter(has_text="FAILURE")
        .count()
        >= 1
    )
    # Flower's own "Failed" filter: only the failures, the given-up task among them.
    page.locator("button.task-state-filter[data-task-state='FAILURE']").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#tasks-table tbody tr')]"
        ".every(r => r.innerText.includes('FAILURE'))"
    )
    assert page.locator("#tasks-table tbody tr", has_text="syndicate.process_article").count() >= 1
    saved = [shots / "flower-tasks.png"]
    page.screenshot(path=str(saved[-1]), full_page=True)
    page.goto(f"{flower}/task/{tasks['process']['uuid']}")
    body = page.locator("body").inner_text()
    assert "FAILURE" in body and "gave up after 6 attempts" in body, body[:2000]
    saved.append(shots / "flower-given-up-task.png")
    page.screenshot(path=str(saved[-1]), full_page=True)
    context.close()
    return saved
