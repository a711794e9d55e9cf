"""Ingest burst benchmark: pushes/s and latency of ``POST /api/articles`` beside the server's HTTP floor.

Everything is real and local: a redis-server (``tests.support.services``), ``syndicate migrate`` and
one ``syndicate web`` process (production uvicorn options) on a SQLite database in a temp dir (or
``--database-url``), no worker. The load comes from ``tests.support.rawhttp.KeepAliveClient`` over
``--concurrency`` keep-alive connections (httpx cost as much CPU per request as the server did).

Three cases, ``--requests`` each, in this order, interleaved ``--repeat`` times (medians reported):

* **floor**: the same POST with a wrong token, answered 401 by ``worker.web.middleware.AuthGate`` from the
  headers alone (no routing, no body, no database): what this server and client do at best per request;
* **new URLs**: valid pushes, every URL new (an INSERT each, plus the Celery message);
* **repeats**: valid pushes of URLs already stored (an UPDATE each, plus the message).

Per case: requests/s, p50/p95/p99 latency, and the web process's CPU milliseconds per request (from
``/proc``), then the ratio of each ingest case to the floor. Run from the repository root:
``.venv/bin/python bench/burst.py [--requests 3000] [--concurrency 32] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/burst.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

from tests.support.rawhttp import KeepAliveClient  # noqa: E402
from tests.support.services import RedisServer, Syndicate, free_port, wait_port  # noqa: E402

TOKEN = "bench-token"
CONFIG = """
api: {token: "${BENCH_API_TOKEN}"}
sources: [{name: partner, kind: listing, url: "http://127.0.0.1:9/news/"}]
feeds: [{name: all, title: All}]
endpoints: [{name: log, kind: file, path: shares.jsonl}]
"""


@dataclass
class Result:
    """One case's run: how many, how long, latencies and the server's CPU seconds."""

    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def pct(self, q: int) -> float:
        """The ``q``-th percentile latency in milliseconds."""
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(case: str, n: int, offset: int) -> list[tuple[bytes, str]]:
    """``n`` request bodies and the Authorization header for ``case``."""
    auth = "Bearer wrong" if case == "floor" else f"Bearer {TOKEN}"
    # "repeats" reuses the URLs of the first "new URLs" round (offset 0), which are stored by then.
    start = 0 if case == "repeats" else offset
    out = []
    for i in range(start, start + n):
        url = f"https://partner.example/news/{i}.html"
        out.append(
            (json.dumps({"url": url, "title": f"Story {i}", "content_html": "<p>Text.</p>"}).encode(), auth)
        )
    return out


async def burst(
    port: int, pid: int, requests: list[tuple[bytes, str]], concurrency: int, want: int
) -> Result:
    """Send ``requests`` over ``concurrency`` connections; every answer must be ``want``."""
    pending = list(reversed(requests))
    latencies: list[float] = []

    async def lane() -> None:
        client = KeepAliveClient(port)
        try:
            while pending:
                body, auth = pending.pop()
                started = time.perf_counter()
                status, content = await client.post(
                    "/api/articles", body, {"Content-Type": "application/json", "Authorization": auth}
                )
                latencies.append(time.perf_counter() - started)
                if status != want:
                    raise SystemExit(f"expected {want}, got {status}: {content[:300]!r}")
        finally:
            await client.close()

    cpu, started = process_cpu(pid), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return Result(len(requests), time.perf_counter() - started, latencies, process_cpu(pid) - cpu)


def main() -> None:
    """Start Redis and ``syndicate web``, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per case and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="syn-burst-"))
    redis_server = RedisServer().start()
    (tmp / "syndicate.yaml").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    database_url = args.database_url or f"sqlite:///{tmp / 'syndicate.db'}"
    syn = Syndicate.make(
        tmp,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "SYNDICATE_CONFIG": str(tmp / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "BENCH_API_TOKEN": TOKEN,
        },
    )
    results: dict[str, list[Result]] = {"floor": [], "new URLs": [], "repeats": []}
    want = {"floor": 401, "new URLs": 202, "repeats": 202}
    try:
        migrated = syn.run("migrate")
        if migrated.returncode:
            raise SystemExit(migrated.stderr)
        web = syn.start("web", "web")
        wait_port(port, 30, web)
        for round_ in range(args.repeat):
            for case in results:
                plan = bodies(case, args.requests, round_ * args.requests)
                result = asyncio.run(burst(port, web.pid, plan, args.concurrency, want[case]))
                results[case].append(result)
                print(f"  round {round_ + 1} {case:9} {result.rate:8.0f}/s", flush=True)
    finally:
        syn.stop()
        redis_server.stop()

    print(
        f"\n{args.requests} requests per case and round, {args.concurrency} connections, one web process,"
        f" {'SQLite' if database_url.startswith('sqlite') else database_url.split(':', 1)[0]},"
        f" load average {os.getloadavg()[0]:.1f}; medians of {args.repeat} rounds\n"
    )
    print("| case | requests/s | p50 ms | p95 ms | p99 ms | server CPU ms/request | vs floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    floor = statistics.median(r.rate for r in results["floor"])
    for case, runs in results.items():
        rate = statistics.median(r.rate for r in runs)
        cells = [f"{statistics.median(r.pct(q) for r in runs):.0f}" for q in (50, 95, 99)] + [
            f"{statistics.median(r.server_cpu / r.requests * 1000 for r in runs):.1f}"
        ]
        print(f"| {case} | {rate:,.0f} | {' | '.join(cells)} | {rate / floor:.2f}x |")


if __name__ == "__main__":
    main()
