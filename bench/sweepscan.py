"""What the sweep pays to check "queued" work markers against the broker (worker/ops/broker.py).

Fills the real ``fetch`` queue of a real redis-server with N real Celery messages (``send_task``), then
times :func:`worker.ops.broker.waiting` for 500 task ids, the sweep's batch: the 500 oldest messages (a
backlog of pending articles, found from the tail) and 500 ids in no queue (every message read, up to
the scan limit), beside the floor: one LRANGE of the whole list, no parsing. Also :func:`taken`.

    .venv/bin/python bench/sweepscan.py                 # N = 1,000, 5,000 and 20,000, medians of 5
    .venv/bin/python bench/sweepscan.py --sizes 20000 --repeat 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from celery import Celery

from tests.support.services import RedisServer
from worker.ops import broker

QUEUES = ("crawl", "fetch", "render", "share")
TASK = "syndicate.process_article"


def median_ms(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(app: Celery, client: redis.Redis, size: int, repeat: int) -> list[str]:
    """One table row: ``size`` messages in the fetch queue."""
    client.flushdb()
    with app.producer_or_acquire() as producer:
        ids = [str(app.send_task(TASK, args=[i], queue="fetch", producer=producer).id) for i in range(size)]
    per_message = len(client.lindex("fetch", 0) or b"")
    oldest, absent = set(ids[:500]), {str(uuid.uuid4()) for _ in range(500)}
    return [
        f"{size:,}",
        str(per_message),
        f"{median_ms(lambda: broker.waiting(client, oldest, QUEUES), repeat):.1f}",
        f"{median_ms(lambda: broker.waiting(client, absent, QUEUES), repeat):.1f}",
        f"{median_ms(lambda: client.lrange('fetch', 0, -1), repeat):.1f}",
        f"{median_ms(lambda: broker.taken(client), repeat):.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        app = Celery("sweepscan", broker=server.url)
        client = redis.Redis.from_url(server.url)
        rows = [measure(app, client, size, args.repeat) for size in args.sizes]
    finally:
        server.stop()
    print(
        "| queued messages | bytes each | 500 oldest sought (ms) | 500 absent sought (ms) "
        "| floor: one LRANGE of all (ms) | taken() (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
