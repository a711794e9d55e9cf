"""Slow networks through a real ``syndicate worker``: per-endpoint timeouts and uncertain posts settled.

Real Redis, a real worker process, the real ``mastodon-mock`` peer behind a proxy that holds each
new status 2.5 s before the peer sees it (the endpoint waits 1 s), and a webhook receiver that
answers after 2 s (the endpoint waits 4 s). Each Mastodon share must pass through ``uncertain``
(visible, with the reason that it is being looked up) and end ``sent`` with the peer's status id,
with one POST per article and one status on the peer; each webhook must arrive exactly once.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.pipeline.receivers import Answer, Receiver, SlowProxy
from tests.support.httpserver import HTTPTestServer
from tests.support.mastodon_peer import TOKEN, MastodonPeer
from tests.support.services import RedisServer, Syndicate

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ARTICLES = 3
SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"


def test_slow_networks_post_once_and_uncertain_posts_settle_by_themselves(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(redis_url).flushdb()
    hooks = Receiver()
    hooks.default = Answer(200, delay=2.0)
    hooks.thread.start()
    with (
        MastodonPeer() as masto,
        SlowProxy(masto.url, "/api/v1/statuses", delay=2.5) as proxy,
        HTTPTestServer(root=SITE) as site,
    ):
        (tmp_path / "syndicate.yaml").write_text(
            f"""
fetch: {{allow_hosts: ["127.0.0.1"], timeout: 10s}}
sources:
  - {{name: cluster, kind: listing, url: "{site.url("/")}", schedule: 1d,
      options: {{link_selector: "a.post-link"}}}}
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: masto, kind: mastodon, instance: "{proxy.url}", access_token: "${{SLOW_MASTO}}",
      back_catalogue: true, story_window: 0, timeout: 1s}}
  - {{name: hook, kind: webhook, url: "{hooks.url}", secret: "${{SLOW_HOOK}}",
      back_catalogue: true, story_window: 0, timeout: 4s}}
""",
            encoding="utf-8",
        )
        db = tmp_path / "db.sqlite"
        syn = Syndicate.make(
            tmp_path,
            {
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "DATABASE_URL": f"sqlite:///{db}",
                "REDIS_URL": redis_url,
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SLOW_MASTO": TOKEN,
                "SLOW_HOOK": SECRET,
            },
        )
        assert syn.run("migrate").returncode == 0
        engine = sa.create_engine(f"sqlite:///{db}")
        seen: dict[int, list[str]] = defaultdict(list)  # share id -> statuses in the order seen
        changed: dict[tuple[int, str], float] = {}
        uncertain_errors: set[str] = set()
        try:
            syn.start("worker", "worker", "--concurrency", "3")
            started = time.monotonic()
            assert syn.run("crawl", "cluster").returncode == 0
            deadline = started + 120
            rows: list[sa.Row[tuple[int, str, str, str | None, str | None]]] = []
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    rows = list(
                        conn.execute(sa.text("select id, endpoint, status, remote_id, error from shares"))
                    )
                for row in rows:
                    if not seen[row.id] or seen[row.id][-1] != row.status:
                        seen[row.id].append(row.status)
                        changed[(row.id, row.status)] = time.monotonic()
                    if row.status == "uncertain":
                        uncertain_errors.add(str(row.error))
                if len(rows) == 2 * ARTICLES and all(r.status in ("sent", "failed") for r in rows):
                    break
                time.sleep(0.1)
            by_endpoint = {
                name: Counter(r.status for r in rows if r.endpoint == name) for name in ("masto", "hook")
            }
            settle_times = [
                changed[(sid, "sent")] - changed[(sid, "uncertain")]
                for sid in seen
                if (sid, "uncertain") in changed and (sid, "sent") in changed
            ]
            print(f"shares: {by_endpoint}; seen {dict(seen)}; uncertain -> sent in {settle_times}")
            assert by_endpoint["masto"]["sent"] == ARTICLES, syn.logs()
            assert by_endpoint["hook"]["sent"] == ARTICLES, syn.logs()

            # Mastodon: each share was uncertain (visibly), then settled by a lookup to the peer's id.
            posted = masto.statuses()
            links = Counter(next(w for w in s["content"].split('"') if w.startswith("http")) for s in posted)
            assert len(posted) == ARTICLES and set(links.values()) == {1}, links
            assert len(proxy.posts) == ARTICLES  # one POST per article: looked up, never resent
            masto_rows = [r for r in rows if r.endpoint == "masto"]
            assert sorted(str(r.remote_id) for r in masto_rows) == sorted(str(s["id"]) for s in posted)
            assert all("uncertain" in seen[r.id] for r in masto_rows), dict(seen)
            assert len(settle_times) == ARTICLES and max(settle_times) < 30
            assert all("looking the post up automatically" in e for e in uncertain_errors), uncertain_errors

            # Webhook: its 4 s timeout is above the receiver's 2 s: one delivery per article.
            assert len(hooks.received) == ARTICLES
            assert len(set(hooks.ids())) == ARTICLES
            assert all(seen[r.id][-1] == "sent" for r in rows if r.endpoint == "hook")
            report = json.loads(syn.run("status", "--json").stdout)
            masto_status = next(e for e in report["endpoints"] if e["name"] == "masto")
            assert (masto_status["uncertain"], masto_status["settling"], masto_status["needs_operator"]) == (
                0,
                0,
                0,
            )
        finally:
            syn.stop()
            engine.dispose()
            hooks.server.shutdown()
            hooks.server.server_close()
