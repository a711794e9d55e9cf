"""Two versions of one story, a worker killed while posting it: one post per endpoint, the preferred one.

Real Redis, real Celery worker processes, the real web app (the ingest API), the real ``mastodon-mock``
peer behind a proxy that holds the first status POST after the peer answered (the post exists, the
worker never hears of it), and a signed-webhook receiver. Two partners push their write-ups of one
event; the story is recorded in the database before any worker runs (standing in for the store's
assignment, which keeps a story already set), so the two versions are processed and planned at the
same moment by one worker's two processes. That worker's process group gets SIGKILL while the
Mastodon post is held; a second worker recovers the claim once the Redis visibility timeout (20 s
here) hands the message back.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.integration.test_share_crash import HoldingProxy, HookReceiver, _serve
from tests.support.mastodon_peer import TOKEN, MastodonPeer
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.store.db import get_engine
from worker.store.models import Article, Share, ShareSkip, Story

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "story-crash-token"
TEXT = (
    "<p>The Cluj IT Cluster and the Rawabi Tech Hub signed a partnership on 12 March 2019 to exchange "
    "engineers, run joint training and open each other's markets to their member companies.</p>"
)
VERSIONS = {
    "partner": ("https://partner.example/news/cluj-rawabi", "Cluj and Rawabi sign a partnership"),
    "hub": ("https://hub.example/news/cluj-rawabi", "Our partnership with the Rawabi Tech Hub"),
}


def _config(path: Path, masto_url: str, hook_url: str) -> None:
    path.write_text(
        f"""
api:
  token: ${{STORY_API_TOKEN}}
sources:
  - {{name: partner, kind: push}}
  - {{name: hub, kind: push, priority: 10}}   # the hub's own write-up is the one to post
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: masto, kind: mastodon, instance: "{masto_url}", access_token: "${{STORY_MASTO}}",
      story_window: 0}}
  - {{name: hook, kind: webhook, url: "{hook_url}", secret: "${{STORY_HOOK}}", story_window: 0}}
""",
        encoding="utf-8",
    )


def _link_story(database_url: str) -> dict[str, int]:
    """One story of the two pushed versions (the store's assignment would record it the same way)."""
    with Session(get_engine(database_url)) as session, session.begin():
        rows = {a.source.name: a for a in session.scalars(select(Article))}
        assert sorted(rows) == ["hub", "partner"], rows
        story = Story(
            title=VERSIONS["partner"][1],
            entry_key=f"articles/{rows['partner'].id}",
            entry_day=date.today(),
        )
        session.add(story)
        session.flush()
        for name, row in rows.items():
            row.story_id, row.story_role = story.id, "main" if name == "hub" else "version"
        return {name: row.id for name, row in rows.items()}


def _shares(database_url: str) -> list[tuple[str, int, int | None, str]]:
    with Session(get_engine(database_url)) as session:
        return [
            (s.endpoint, s.article_id, s.story_id, s.status)
            for s in session.scalars(select(Share).order_by(Share.endpoint))
        ]


def test_two_versions_of_a_story_post_once_when_a_worker_dies_posting(
    tmp_path: Path, database_url: str, redis_server: RedisServer
) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + ("/4" if database_url.startswith("sqlite") else "/8")
    redis.Redis.from_url(redis_url).flushdb()
    with MastodonPeer() as masto:
        masto_proxy = _serve(HoldingProxy(masto.url, "/api/v1/statuses", "after"))
        hooks = _serve(HookReceiver())
        assert isinstance(masto_proxy, HoldingProxy) and isinstance(hooks, HookReceiver)
        _config(tmp_path / "syndicate.yaml", masto_proxy.url, f"http://127.0.0.1:{hooks.server_port}/h")
        port = free_port()
        syn = Syndicate.make(
            tmp_path,
            {
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "SYNDICATE_HTTP_PORT": str(port),
                "SYNDICATE_VISIBILITY_TIMEOUT": "20",
                "STORY_API_TOKEN": API_TOKEN,
                "STORY_MASTO": TOKEN,
                "STORY_HOOK": SECRET,
            },
        )
        assert syn.run("migrate").returncode == 0
        try:
            web = syn.start("web", "web")
            wait_port(port, 30, web)
            for source, (url, title) in VERSIONS.items():
                pushed = requests.post(
                    f"http://127.0.0.1:{port}/api/articles",
                    headers={"Authorization": f"Bearer {API_TOKEN}"},
                    json={"url": url, "title": title, "content_html": TEXT, "source": source},
                    timeout=10,
                )
                assert pushed.status_code == 202, pushed.text
            ids = _link_story(database_url)

            first = syn.start("worker-1", "worker", "--concurrency", "2", "--hostname", "one@%h")
            assert masto_proxy.held.wait(90), syn.logs()  # the peer has the post; the answer is held
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            masto_proxy.release.set()

            syn.start("worker-2", "worker", "--concurrency", "1", "--hostname", "two@%h")
            deadline = time.monotonic() + 150
            shares = _shares(database_url)
            while time.monotonic() < deadline and not (
                len(shares) == 2 and all(s[3] in ("sent", "failed", "uncertain") for s in shares)
            ):
                time.sleep(1)
                shares = _shares(database_url)
            story = shares[0][2] if shares else None
            # One share per endpoint, of the story, moved to the preferred (hub's) version, sent.
            assert shares == [("hook", ids["hub"], story, "sent"), ("masto", ids["hub"], story, "sent")], (
                syn.logs()
            )
            with Session(get_engine(database_url)) as session:
                skipped = {(s.article_id, s.endpoint): s.reason for s in session.scalars(select(ShareSkip))}
            assert skipped == {
                (ids["partner"], "hook"): "same_story",
                (ids["partner"], "masto"): "same_story",
            }
            # Mastodon: one status, the hub's (the recovery sent it again with the same key).
            links = Counter(
                url for status in masto.statuses() for url, _ in VERSIONS.values() if url in status["content"]
            )
            assert links == Counter({VERSIONS["hub"][0]: 1}), links
            # The webhook: one delivery id (a receiver deduplicates a resend on it).
            assert len(hooks.ids) == 1, hooks.ids
        finally:
            syn.stop()
            masto_proxy.shutdown()
            hooks.shutdown()
            get_engine(database_url).dispose()
