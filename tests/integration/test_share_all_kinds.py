"""Every endpoint kind, from the YAML config through real ``syndicate web`` and ``syndicate worker``
processes to a receiver that counts what arrived.

Receivers: Mastodon is the real ``mastodon-mock`` peer and Bluesky the reference PDS (read back
through their own APIs); the signed webhook goes to a Standard Webhooks receiver that verifies every
signature with the ``standardwebhooks`` package; the file endpoint appends to a temp file. X,
LinkedIn, Facebook, Threads, Telegram, Discord, Slack and Teams cannot run here, so their ``api``
and webhook URLs point at :mod:`tests.support.networks`, which replays each network's documented
success answers and records every request. Credentials are ``${ENV}`` references whose values only
the processes' environment holds; none may show up in the status output, the logs or
``/api/status``. Two articles are pushed through ``POST /api/articles`` with a lead image served
from a local server that ``fetch.allow_hosts`` admits.

The first test runs on SQLite, the second on PostgreSQL. Without the PDS installed, the Bluesky
endpoint is left out and the test says so loudly (under ``CI=true`` it fails instead), as
``tests/support/bluesky_peer.py`` asks.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa
import standardwebhooks

from config.model import LinkedInEndpointConfig
from tests.support.bluesky_peer import Account, BlueskyPeer, PeerUnavailable, in_ci
from tests.support.httpserver import HTTPTestServer, Response
from tests.support.mastodon_peer import TOKEN as MASTODON_TOKEN
from tests.support.mastodon_peer import MastodonPeer
from tests.support.networks import SHARE_FIXTURES, FakeNetworks, basic_auth
from tests.support.services import PostgresServer, RedisServer, Syndicate, free_port, wait_port
from tests.support.storygen import events

# One module-wide rig: its tests stay in one test process (bootstrap.py test runs --dist loadgroup).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("test_share_all_kinds")]

LEAD = (SHARE_FIXTURES / "bluesky" / "lead.jpg").read_bytes()
# The pushed articles' names and figures: each a generated event of its own (tests/support/storygen.py).
PUSHED = events(8, seed=54)
API_TOKEN = "all-kinds-ingest-" + secrets.token_hex(8)
ALL_KINDS = {
    "mastodon",
    "bluesky",
    "x",
    "linkedin",
    "facebook",
    "threads",
    "telegram",
    "discord",
    "slack",
    "teams",
    "webhook",
    "file",
}
# Kinds whose network answers with (or lets us build) a public URL of the post.
URL_KINDS = {"mastodon", "bluesky", "x", "linkedin", "facebook", "threads", "telegram", "webhook"}
FINAL = ("sent", "failed", "uncertain")
UNKNOWN_WEBHOOK = next(
    case
    for case in json.loads((SHARE_FIXTURES / "discord" / "errors.json").read_text(encoding="utf-8"))["cases"]
    if case["body"].get("code") == 10015
)
_runs = iter(range(1, 1000))


# ---------------------------------------------------------------- receivers


class HookReceiver(ThreadingHTTPServer):
    """A Standard Webhooks receiver: verifies each signature, keeps the verified payloads."""

    daemon_threads = True

    def __init__(self, secret: str) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.verifier = standardwebhooks.Webhook(secret)
        self.payloads: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.refused = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hooks/syndicate"


class _HookHandler(BaseHTTPRequestHandler):
    server: HookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = self.server.verifier.verify(body, headers)
        except standardwebhooks.WebhookVerificationError:
            with self.server.lock:
                self.server.refused += 1
            status, answer = 400, b'{"error": "bad signature"}'
        else:
            with self.server.lock:
                self.server.payloads.append(payload)
                self.server.ids.append(headers["webhook-id"])
                n = len(self.server.payloads)
            status = 200
            answer = json.dumps({"id": f"delivery-{n}", "url": f"http://127.0.0.1/deliveries/{n}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# ---------------------------------------------------------------- module-wide peers


@pytest.fixture(scope="module")
def masto() -> Iterator[MastodonPeer]:
    """The real mastodon-mock peer."""
    with MastodonPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def pds() -> Iterator[BlueskyPeer | None]:
    """The reference PDS, or None (loudly; a failure under CI) when it cannot run here."""
    peer = BlueskyPeer()
    try:
        peer.start()
    except PeerUnavailable as exc:
        message = f"the reference Bluesky PDS cannot run, so the bluesky endpoint is left out: {exc}"
        if in_ci():
            pytest.fail(message)
        warnings.warn("*** " + message + " ***", stacklevel=1)
        print("\n*** " + message + " ***")
        yield None
        return
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPTestServer]:
    """The partner site: the articles' pages and their lead image."""
    with HTTPTestServer(root=None) as server:
        server.route("/img/lead.jpg", Response(200, LEAD, {"Content-Type": "image/jpeg"}))
        yield server


@pytest.fixture(scope="module")
def networks() -> Iterator[FakeNetworks]:
    """The fake X, LinkedIn, Facebook, Threads, Telegram, Discord, Slack and Teams."""
    with FakeNetworks() as server:
        yield server


# ---------------------------------------------------------------- one deployment


@dataclass
class Deployment:
    """A config with one endpoint of every kind, migrated, with web and worker running."""

    tmp: Path
    syn: Syndicate
    base: str
    database_url: str
    secrets: dict[str, str]
    hooks: HookReceiver
    archive: Path
    account: Account | None
    kinds: dict[str, str] = field(default_factory=dict)  # endpoint name -> kind
    run: int = 0

    def push(self, site: HTTPTestServer, n: int, **fields: Any) -> tuple[int, str]:
        """Push article ``n`` (a generated event of its own: with stories on, a story of its own);
        its id and URL."""
        event = PUSHED[n]
        path = f"/news/run-{self.run}/story-{n}.html"
        site.content(path, b"<html><head><title>story</title></head><body><p>A story.</p></body></html>")
        url = site.url(path)
        body = {
            "url": url,
            "title": f"{event.org} deschide în {event.town} un centru cu {event.count} de locuri de muncă",
            "content_html": f"<p>{event.org} investește {event.amount} de mii de euro într-un centru din "
            f"{event.town}, unde vor lucra {event.count} de specialiști.</p>",
            "summary": f"{event.org} investește {event.amount} de mii de euro în {event.town}; "
            f"{event.person}, directoarea companiei, spune că primii angajați încep în această toamnă.",
            "published": datetime.now(UTC).isoformat(),
            "authors": [event.person],
            "category": "economie",
            "tags": ["Investiții", "piața muncii"],
            "image": site.url("/img/lead.jpg"),
            "language": "ro",
            **fields,
        }
        answer = requests.post(
            f"{self.base}/api/articles",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            json=body,
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        return int(answer.json()["id"]), url

    def status(self) -> dict[str, dict[str, Any]]:
        """``/api/status`` endpoints by name."""
        answer = requests.get(
            f"{self.base}/api/status", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
        )
        answer.raise_for_status()
        return {e["name"]: e for e in answer.json()["endpoints"]}

    def wait(self, done: Callable[[dict[str, dict[str, Any]]], bool], what: str, timeout: float = 60) -> None:
        """Poll ``/api/status`` until ``done`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.status()):
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {self.status()}\n{self.syn.logs()}")

    def shares(self) -> list[dict[str, Any]]:
        """Every row of the shares table."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT endpoint, article_id, status, remote_id, remote_url, error FROM shares")
                )
                return [dict(r._mapping) for r in rows]
        finally:
            engine.dispose()

    def endpoint_state(self, name: str) -> dict[str, Any]:
        """``endpoints.state`` of ``name``."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                raw = conn.execute(
                    sa.text("SELECT state FROM endpoints WHERE name = :n"), {"n": name}
                ).scalar()
        finally:
            engine.dispose()
        return json.loads(raw) if isinstance(raw, str) else dict(raw or {})

    def log(self, name: str) -> str:
        """Everything process ``name`` printed."""
        return (self.tmp / f"{name}.log").read_text(errors="replace", encoding="utf-8")


def _config(
    networks: FakeNetworks,
    masto: MastodonPeer,
    pds: BlueskyPeer | None,
    account: Account | None,
    hook_url: str,
    archive: Path,
) -> tuple[str, dict[str, str]]:
    net = networks.url
    kinds = {
        "masto": f'{{name: masto, kind: mastodon, instance: "{masto.url}", access_token: "${{ALL_MASTO}}", '
        "story_window: 0}",
        "x": f'{{name: x, kind: x, api: "{net}", client_id: syndicate-all-kinds, '
        'client_secret: "${ALL_X_SECRET}", refresh_token: "${ALL_X_REFRESH}", story_window: 0}',
        "linkedin": f'{{name: linkedin, kind: linkedin, api: "{net}", author: "urn:li:organization:5515715", '
        'access_token: "${ALL_LI_TOKEN}", story_window: 0}',
        "facebook": f'{{name: facebook, kind: facebook, api: "{net}", page_id: "104528252291000", '
        'page_access_token: "${ALL_FB_TOKEN}", story_window: 0}',
        "threads": f'{{name: threads, kind: threads, api: "{net}", access_token: "${{ALL_TH_TOKEN}}", '
        "story_window: 0}",
        "telegram": f'{{name: telegram, kind: telegram, api: "{net}", bot_token: "${{ALL_TG_TOKEN}}", '
        'chat_id: "-1001234567890", story_window: 0}',
        "discord": '{name: discord, kind: discord, webhook_url: "${ALL_DISCORD_URL}", story_window: 0}',
        "slack": '{name: slack, kind: slack, webhook_url: "${ALL_SLACK_URL}", story_window: 0}',
        "teams": '{name: teams, kind: teams, webhook_url: "${ALL_TEAMS_URL}", story_window: 0}',
        "hook": f'{{name: hook, kind: webhook, url: "{hook_url}", secret: "${{ALL_HOOK_SECRET}}", '
        "story_window: 0}",
        "archive": f'{{name: archive, kind: file, path: "{archive}", story_window: 0}}',
    }
    if pds is not None and account is not None:
        kinds["bsky"] = (
            f'{{name: bsky, kind: bluesky, service: "{pds.url}", identifier: "{account.handle}", '
            'app_password: "${ALL_BSKY_PASSWORD}", story_window: 0}'
        )
    endpoints = "\n".join(f"  - {line}" for line in kinds.values())
    text = f"""
api: {{token: "${{ALL_API_TOKEN}}"}}
fetch: {{allow_hosts: ["127.0.0.1"], timeout: 10s}}
feeds: [{{name: all, title: All}}]
endpoints:
{endpoints}
"""
    token = secrets.token_urlsafe(24)
    values = {
        "ALL_API_TOKEN": API_TOKEN,
        "ALL_MASTO": MASTODON_TOKEN,
        "ALL_X_SECRET": "xsecret-" + secrets.token_urlsafe(24),
        "ALL_X_REFRESH": "xseed-" + secrets.token_urlsafe(24),
        "ALL_LI_TOKEN": "li-" + secrets.token_urlsafe(24),
        "ALL_FB_TOKEN": "EAAB" + secrets.token_urlsafe(24),
        "ALL_TH_TOKEN": "THAA" + secrets.token_urlsafe(24),
        "ALL_TG_TOKEN": "7012345678:AA" + secrets.token_urlsafe(24),
        "ALL_DISCORD_URL": f"{net}/api/webhooks/1235619982417838120/dc-{token}",
        "ALL_SLACK_URL": f"{net}/services/T0AAAAAAA/B0BBBBBBB/sl{secrets.token_hex(12)}",
        "ALL_TEAMS_URL": f"{net}/powerautomate/automations/direct/workflows/8f088005/triggers/manual/paths/"
        f"invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=tm{secrets.token_hex(16)}",
        "ALL_HOOK_SECRET": "whsec_" + secrets.token_urlsafe(32).replace("-", "A").replace("_", "B") + "=",
    }
    if account is not None:
        values["ALL_BSKY_PASSWORD"] = account.app_password
    return text, values


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: RedisServer,
    masto: MastodonPeer,
    pds: BlueskyPeer | None,
    networks: FakeNetworks,
) -> Iterator[Deployment]:
    """A fresh database (SQLite, or PostgreSQL when parametrized so), config, web and worker."""
    run = next(_runs)
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{7 + run}"
    redis.Redis.from_url(redis_url).flushdb()
    account = pds.create_account(f"allkinds{run}t{int(time.time()) % 100000}") if pds is not None else None
    archive = tmp_path / "archive" / "shares.jsonl"
    text, values = _config(networks, masto, pds, account, "HOOK_URL", archive)
    hooks = HookReceiver(values["ALL_HOOK_SECRET"])
    threading.Thread(target=hooks.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    (tmp_path / "syndicate.yaml").write_text(text.replace("HOOK_URL", hooks.url), encoding="utf-8")
    port = free_port()
    if getattr(request, "param", "sqlite") == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = server.create_database(f"all_kinds_{run}_{os.getpid()}")
    else:
        database_url = f"sqlite:///{tmp_path / 'syndicate.db'}"
    syn = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            **values,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    dep = Deployment(
        tmp=tmp_path,
        syn=syn,
        base=f"http://127.0.0.1:{port}",
        database_url=database_url,
        secrets=values,
        hooks=hooks,
        archive=archive,
        account=account,
        run=run,
    )
    try:
        syn.start("worker", "worker", "--concurrency", "4", "--hostname", f"allkinds{run}@%h")
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        dep.kinds = {name: kind for name, kind in _names_and_kinds(dep).items()}
        yield dep
    finally:
        syn.stop()
        hooks.shutdown()
        hooks.server_close()


def _names_and_kinds(dep: Deployment) -> dict[str, str]:
    return {name: e["kind"] for name, e in dep.status().items()}


# ---------------------------------------------------------------- reading back what arrived


def _posts_per_url(
    dep: Deployment, networks: FakeNetworks, masto: MastodonPeer, pds: BlueskyPeer | None, urls: list[str]
) -> dict[str, Counter[str]]:
    """For each endpoint, how many posts carrying each article URL its receiver holds."""

    def count(bodies: list[Any]) -> Counter[str]:
        found: Counter[str] = Counter()
        for body in bodies:
            text = json.dumps(body, ensure_ascii=False)
            for url in urls:
                found[url] += url in text
        return found

    def posts(network: str, path_part: str, method: str = "POST") -> list[Any]:
        return [c.body for c in networks.calls(network) if c.method == method and path_part in c.path]

    out = {
        "masto": count([s["content"] for s in masto.statuses()]),
        "x": count(posts("x", "/2/tweets")),
        "linkedin": count(posts("linkedin", "/rest/posts")),
        "facebook": count(posts("facebook", "/feed")),
        # The container carries the text; each is published once (checked below).
        "threads": count(posts("threads", "/threads")),
        "telegram": count(posts("telegram", "/send")),
        "discord": count(posts("discord", "/api/webhooks/")),
        "slack": count(posts("slack", "/services/")),
        "teams": count(posts("teams", "/powerautomate/")),
        "hook": count([p["data"] for p in dep.hooks.payloads]),
        "archive": count(
            [json.loads(line) for line in dep.archive.read_text(encoding="utf-8").splitlines()]
            if dep.archive.exists()
            else []
        ),
    }
    if pds is not None and dep.account is not None:
        listed = pds.get(
            "com.atproto.repo.listRecords", repo=dep.account.did, collection="app.bsky.feed.post", limit=100
        )
        assert listed.ok, listed.text
        out["bsky"] = count([r["value"] for r in listed.json()["records"]])
    return out


def _assert_no_secrets(dep: Deployment, where: str, text: str, networks: FakeNetworks | None = None) -> None:
    issued = {f"issued token {n}": t for n, t in enumerate(networks.issued_tokens if networks else [])}
    for name, value in {**dep.secrets, **issued}.items():
        pieces = [value, *(p for p in value.replace("?", "/").replace("&", "/").split("/") if len(p) >= 16)]
        for piece in pieces:
            assert piece not in text, f"{name} (or a piece of it) appears in {where}"


def _print_counts(title: str, dep: Deployment, per_url: dict[str, Counter[str]]) -> None:
    print(f"\n{title}")
    status = dep.status()
    for name, entry in status.items():
        posts = sum(per_url.get(name, Counter()).values())
        print(
            f"  {name:<9} {entry['kind']:<9} sent {entry['sent']} failed {entry['failed']} "
            f"uncertain {entry['uncertain']} pending {entry['pending']} received {posts}"
            + ("" if entry["enabled"] else f"  DISABLED: {entry['disabled_reason']}")
        )


# ---------------------------------------------------------------- the tests


def test_every_kind_posts_each_article_once(
    deployment: Deployment,
    site: HTTPTestServer,
    networks: FakeNetworks,
    masto: MastodonPeer,
    pds: BlueskyPeer | None,
) -> None:
    dep = deployment
    expected_kinds = ALL_KINDS if pds is not None else ALL_KINDS - {"bluesky"}
    assert set(dep.kinds.values()) == expected_kinds
    x_calls_before = len(networks.calls("x"))
    threads_before = len(networks.calls("threads"))
    first_id, first_url = dep.push(site, 1)
    second_id, second_url = dep.push(
        site,
        2,
        title="Bursa de la București crește pentru a doua zi consecutiv, iar analiștii se așteaptă la "
        "noi maxime istorice ale indicelui BET înainte de sfârșitul trimestrului",
        summary="Indicele BET a câștigat 1,2%. " * 120,
    )
    urls = [first_url, second_url]
    dep.wait(
        lambda s: all(sum(e[k] for k in FINAL) == 2 and e["pending"] + e["sending"] == 0 for e in s.values()),
        "every share of both articles to be final",
        timeout=75,
    )
    per_url = _posts_per_url(dep, networks, masto, pds, urls)
    _print_counts("all kinds, two articles:", dep, per_url)

    # Exactly one post per (article, endpoint), on every receiver.
    for name in dep.kinds:
        assert per_url[name] == Counter({first_url: 1, second_url: 1}), (name, per_url[name], dep.syn.logs())
    assert dep.hooks.refused == 0 and len(set(dep.hooks.ids)) == 2
    publishes = [
        c.body["creation_id"]
        for c in networks.calls("threads")[threads_before:]
        if c.path.endswith("_publish")
    ]
    assert len(publishes) == len(set(publishes)) == 2, publishes

    # The shares table: all sent, with remote ids (and URLs where the network gives one).
    rows = [r for r in dep.shares() if r["article_id"] in (first_id, second_id)]
    assert len(rows) == 2 * len(dep.kinds)
    for row in rows:
        kind = dep.kinds[row["endpoint"]]
        assert row["status"] == "sent", row
        assert row["remote_id"], row
        if kind in URL_KINDS:
            assert str(row["remote_url"]).startswith(("https://", "http://")), row
    for name in dep.kinds:
        ids = {r["remote_id"] for r in rows if r["endpoint"] == name}
        assert len(ids) == 2, (name, ids)

    # X rotated its refresh token: the database holds the newest, and the second refresh used the first
    # rotated one, not the YAML's seed.
    token_calls = [c for c in networks.calls("x")[x_calls_before:] if c.path == "/2/oauth2/token"]
    presented = [c.body["refresh_token"] for c in token_calls]
    assert len(presented) == 2, presented
    assert presented[0] == dep.secrets["ALL_X_REFRESH"]
    assert presented[1] == networks.x_refresh_issued[-2] != dep.secrets["ALL_X_REFRESH"]
    assert dep.endpoint_state("x")["refresh_token"] == networks.x_refresh_issued[-1]
    assert all(basic_auth(c) == ("syndicate-all-kinds", dep.secrets["ALL_X_SECRET"]) for c in token_calls)
    tweets = [c for c in networks.calls("x")[x_calls_before:] if c.path == "/2/tweets"]
    assert all(c.header("authorization") in {f"Bearer {t}" for t in networks.x_access_live} for c in tweets)

    # What each network received carries its credential where the network wants it, and nowhere else.
    li_posts = [c for c in networks.calls("linkedin") if c.path == "/rest/posts"]
    version = LinkedInEndpointConfig.model_fields["version"].default
    assert all(c.header("linkedin-version") == version for c in li_posts)
    assert all(c.header("authorization") == f"Bearer {dep.secrets['ALL_LI_TOKEN']}" for c in li_posts[-2:])
    assert all("thumbnail" in c.body["content"]["article"] for c in li_posts[-2:])  # the lead image uploaded
    fb_posts = networks.calls("facebook")[-2:]
    assert all(c.body["access_token"] == dep.secrets["ALL_FB_TOKEN"] for c in fb_posts)
    # Both texts fit a photo caption (1,024; the pipeline keeps summaries short), so the lead image
    # went to Telegram by URL.
    telegram = [c for c in networks.calls("telegram") if any(u in json.dumps(c.body) for u in urls)]
    assert [c.path.rsplit("/", 1)[-1] for c in telegram] == ["sendPhoto", "sendPhoto"]
    assert all(c.body["photo"] == site.url("/img/lead.jpg") for c in telegram)

    # `syndicate status --json`: sent counts per endpoint, no credential anywhere.
    status = dep.syn.run("status", "--json")
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    assert {e["name"]: e["sent"] for e in snap["endpoints"]} == {name: 2 for name in dep.kinds}
    _assert_no_secrets(dep, "syndicate status --json", status.stdout + status.stderr, networks)
    api_status = requests.get(
        f"{dep.base}/api/status", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
    )
    assert api_status.status_code == 200, api_status.text
    _assert_no_secrets(dep, "/api/status", api_status.text, networks)
    _assert_no_secrets(dep, "the worker's log", dep.log("worker"), networks)
    _assert_no_secrets(dep, "the web app's log", dep.log("web"), networks)

    # The preview lists every kind, each text within that network's limit.
    for article_id in (first_id, second_id):
        answer = requests.get(
            f"{dep.base}/api/articles/{article_id}/preview",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        entries = answer.json()
        assert {e["kind"] for e in entries} == expected_kinds
        for entry in entries:
            assert "error" not in entry, entry
            assert entry["text"].strip(), entry
            if entry["limit"] is not None:
                assert entry["length"] <= entry["limit"], entry
        _assert_no_secrets(dep, "the preview", answer.text, networks)


@pytest.mark.parametrize("deployment", ["postgresql"], indirect=True)
def test_permanent_error_disables_one_endpoint_until_enabled(
    deployment: Deployment,
    site: HTTPTestServer,
    networks: FakeNetworks,
    masto: MastodonPeer,
    pds: BlueskyPeer | None,
) -> None:
    dep = deployment
    others = [name for name in dep.kinds if name != "discord"]
    networks.fail("discord", UNKNOWN_WEBHOOK["status"], UNKNOWN_WEBHOOK["body"])
    try:
        first_id, first_url = dep.push(site, 3)
        dep.wait(
            lambda s: all(sum(e[k] for k in FINAL) == 1 for e in s.values()),
            "the first article's shares to be final",
        )
        status = dep.status()
        assert not status["discord"]["enabled"]
        assert "Unknown Webhook" in (status["discord"]["disabled_reason"] or "")
        assert status["discord"]["failed"] == 1
        assert all(status[name]["sent"] == 1 and status[name]["enabled"] for name in others), status
        text = dep.syn.run("status")
        assert text.returncode == 0, text.stderr
        line = next(ln for ln in text.stdout.splitlines() if ln.strip().startswith("discord "))
        assert "DISABLED" in line and "Unknown Webhook" in line, line
        _assert_no_secrets(dep, "syndicate status", text.stdout + text.stderr, networks)

        # A second article while Discord is disabled: the others post it, Discord holds it.
        second_id, second_url = dep.push(site, 4)
        dep.wait(
            lambda s: all(s[name]["sent"] == 2 for name in others), "the others to send the second article"
        )
        deadline = time.monotonic() + 30
        while "endpoint discord is disabled" not in dep.log("worker") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "endpoint discord is disabled" in dep.log("worker"), dep.syn.logs()
        held = {r["article_id"]: r["status"] for r in dep.shares() if r["endpoint"] == "discord"}
        assert held == {first_id: "failed", second_id: "pending"}
    finally:
        networks.heal("discord")

    enabled = dep.syn.run("endpoint", "enable", "discord")
    assert enabled.returncode == 0, enabled.stderr
    assert "1 pending shares enqueued" in enabled.stdout
    dep.wait(lambda s: s["discord"]["sent"] == 1 and s["discord"]["enabled"], "the held share to be sent")
    per_url = _posts_per_url(dep, networks, masto, pds, [first_url, second_url])
    _print_counts("Discord disabled by 404 {code: 10015}, then enabled:", dep, per_url)
    # One attempt for the first article (refused), one post of the held second one; nothing else.
    assert per_url["discord"] == Counter({first_url: 1, second_url: 1})
    for name in others:
        assert per_url[name] == Counter({first_url: 1, second_url: 1}), (name, per_url[name])
    rows = {r["article_id"]: r for r in dep.shares() if r["endpoint"] == "discord"}
    assert rows[first_id]["status"] == "failed" and "Unknown Webhook" in rows[first_id]["error"]
    assert rows[second_id]["status"] == "sent" and rows[second_id]["remote_id"]
    assert dep.status()["discord"]["enabled"]
