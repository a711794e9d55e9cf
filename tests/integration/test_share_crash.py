"""A worker killed while sharing never posts twice: kill -9 between the claim and the request, and after
the network accepted the post but before we recorded it; then restart and count the posts on the peers.

Real Redis, real Celery worker processes, the real ``mastodon-mock`` peer (idempotent through
``Idempotency-Key``), a real signed-webhook receiver (idempotent through ``webhook-id``) and a
Discord-shaped webhook receiver (no idempotency, no lookup: the share must end ``uncertain``, not
be posted again). A small forwarding proxy in front of each network holds the first post request,
either before forwarding it (the remote never saw it) or after the remote answered (the remote has
the post, we do not know it). While it is held, the worker's process group gets SIGKILL. The
Redis visibility timeout is 20 s here, so the unacked message comes back to a second worker.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support.mastodon_peer import TOKEN, MastodonPeer
from tests.support.services import RedisServer, Syndicate

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ARTICLES = 3


class HoldingProxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream`` (or answers itself when it has none), holding the first
    POST to ``hold_path``: ``before`` the upstream sees it, or ``after`` the upstream answered."""

    daemon_threads = True

    def __init__(self, upstream: str | None, hold_path: str, phase: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream, self.hold_path, self.phase = upstream, hold_path, phase
        self.held = threading.Event()
        self.release = threading.Event()
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._first = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def take_first(self) -> bool:
        with self.lock:
            first, self._first = self._first, False
            return first


class _ProxyHandler(BaseHTTPRequestHandler):
    server: HoldingProxy

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        holding = (
            self.command == "POST"
            and self.path.startswith(self.server.hold_path)
            and self.server.take_first()
        )
        if holding and self.server.phase == "before":
            self.server.held.set()
            self.server.release.wait(60)
            return  # the worker is dead by now; the remote never saw this request
        if self.server.upstream is None:
            with self.server.lock:
                self.server.posts.append({"headers": headers, "body": json.loads(body or b"{}")})
            status, payload, out_headers = 200, json.dumps({"id": str(len(self.server.posts))}).encode(), {}
        else:
            answer = requests.request(
                self.command, self.server.upstream + self.path, headers=headers, data=body, timeout=30
            )
            status, payload = answer.status_code, answer.content
            out_headers = {
                k: v
                for k, v in answer.headers.items()
                if k.lower().startswith(("x-ratelimit", "retry-after"))
            }
        if holding and self.server.phase == "after":
            self.server.held.set()
            self.server.release.wait(60)
            return  # the remote has the post; the worker died waiting for the answer
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in out_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HookReceiver(ThreadingHTTPServer):
    """A Standard Webhooks receiver counting deliveries per ``webhook-id``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.ids: Counter[str] = Counter()


class _HookHandler(BaseHTTPRequestHandler):
    server: HookReceiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.ids[self.headers["webhook-id"]] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _statuses(syn: Syndicate) -> dict[str, Counter[str]]:
    res = syn.run("status", "--json")
    assert res.returncode == 0, res.stderr
    out: dict[str, Counter[str]] = {}
    for e in json.loads(res.stdout)["endpoints"]:
        out[e["name"]] = Counter({k: e[k] for k in ("pending", "sending", "sent", "failed", "uncertain")})
    return out


@pytest.mark.parametrize("phase", ["before", "after"])
def test_kill_9_while_sharing_posts_once(tmp_path: Path, redis_server: RedisServer, phase: str) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(redis_url).flushdb()
    site_dir = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
    from tests.support.httpserver import HTTPTestServer

    with MastodonPeer() as masto, HTTPTestServer(root=site_dir) as site:
        masto_proxy = _serve(HoldingProxy(masto.url, "/api/v1/statuses", phase))
        hook_proxy = _serve(HoldingProxy(None, "/", phase))  # stands in for a Discord webhook
        hooks = _serve(HookReceiver())
        assert isinstance(masto_proxy, HoldingProxy) and isinstance(hook_proxy, HoldingProxy)
        assert isinstance(hooks, HookReceiver)
        (tmp_path / "syndicate.yaml").write_text(
            f"""
fetch: {{allow_hosts: ["127.0.0.1"], timeout: 10s}}
sources:
  - {{name: cluster, kind: listing, url: "{site.url("/")}", schedule: 1d,
      options: {{link_selector: "a.post-link"}}}}
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: masto, kind: mastodon, instance: "{masto_proxy.url}", access_token: "${{CRASH_MASTO}}",
      back_catalogue: true, story_window: 0}}
  - {{name: hook, kind: webhook, url: "http://127.0.0.1:{hooks.server_port}/h", secret: "${{CRASH_HOOK}}",
      back_catalogue: true, story_window: 0}}
  - {{name: chat, kind: discord, webhook_url: "${{CRASH_DISCORD}}", back_catalogue: true, story_window: 0}}
""",
            encoding="utf-8",
        )
        syn = Syndicate.make(
            tmp_path,
            {
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "REDIS_URL": redis_url,
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SYNDICATE_VISIBILITY_TIMEOUT": "20",
                "CRASH_MASTO": TOKEN,
                "CRASH_HOOK": SECRET,
                "CRASH_DISCORD": f"{hook_proxy.url}/api/webhooks/1/abc",
            },
        )
        assert syn.run("migrate").returncode == 0
        try:
            first = syn.start("worker-1", "worker", "--concurrency", "3", "--hostname", "one@%h")
            assert syn.run("crawl", "cluster").returncode == 0
            assert masto_proxy.held.wait(90), syn.logs()
            assert hook_proxy.held.wait(90), syn.logs()
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            masto_proxy.release.set()
            hook_proxy.release.set()

            syn.start("worker-2", "worker", "--concurrency", "1", "--hostname", "two@%h")
            deadline = time.monotonic() + 150
            counts = _statuses(syn)
            while time.monotonic() < deadline:
                counts = _statuses(syn)
                done = all(
                    sum(counts[name][s] for s in ("sent", "failed", "uncertain")) == ARTICLES
                    for name in ("masto", "hook", "chat")
                )
                if done:
                    break
                time.sleep(1)
            print(f"phase {phase}: {dict((k, dict(v)) for k, v in counts.items())}")

            # Mastodon: exactly one status per article, whatever the phase.
            posted = masto.statuses()
            links = Counter(next(w for w in s["content"].split('"') if w.startswith("http")) for s in posted)
            assert counts["masto"]["sent"] == ARTICLES, syn.logs()
            assert len(posted) == ARTICLES and all(n == 1 for n in links.values()), links
            # Signed webhook: every article delivered, receivers deduplicate on webhook-id.
            assert counts["hook"]["sent"] == ARTICLES
            assert len(hooks.ids) == ARTICLES
            # Discord: never a second post. The killed attempt is `uncertain`; the others were sent.
            bodies = [p["body"]["embeds"][0]["url"] for p in hook_proxy.posts]
            assert all(n == 1 for n in Counter(bodies).values()), bodies
            assert counts["chat"]["uncertain"] == 1
            assert counts["chat"]["sent"] == ARTICLES - 1
            assert len(bodies) == ARTICLES - (1 if phase == "before" else 0)
        finally:
            syn.stop()
            masto_proxy.shutdown()
            hook_proxy.shutdown()
            hooks.shutdown()
