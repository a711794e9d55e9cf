"""Scale-out benchmark: 3 worker machines, 2 web machines, beat, one Redis and one PostgreSQL.

Everything is real and local (``tests.support.cluster``): a redis-server, a throwaway PostgreSQL
cluster (or ``--database-url``), three ``syndicate worker --concurrency 2`` processes with distinct
``--hostname`` and var dirs as if on three machines, two ``syndicate web`` processes, ``syndicate
beat``, a partner site that a scheduled listing source crawls (every request's arrival logged) and a
webhook receiver that every share goes to.

The run: N articles are POSTed to ``/api/articles`` round-robin over both web processes (t0 = the
first push); the run ends when the receiver has seen every pushed article's webhook. Reported:

* throughput: N / (last delivery seen - t0);
* latency per article: push answered 202 → its webhook seen at the receiver (p50/p95/p99);
* the no-op floor measured in the same run with the same three workers (beat stopped first):
  ``syndicate.noop`` tasks/s until the queues and the unacked hash are empty, divided by the tasks
  per article the pipeline ran (from the workers' logs), as in ``bench/pipeline.py``; and the ratio;
* checks: every article ready once, every share sent once and delivered once (distinct
  ``webhook-id``), beat sent each tick once (two beats with ``--beats 2``), per-host politeness
  across the workers (gaps between requests at the partner site), both web processes serving the
  same feed bytes and ETag, no tracebacks or ERROR lines in any log.

``--profile K`` runs instead the four stages of K pushed articles in this process under cProfile
(ingest → process_article → plan_shares → deliver_share, on PostgreSQL, to the same receiver) and
prints per stage the milliseconds, SQL statements and commits per article and the costliest functions.

Run from the repository root: ``.venv/bin/python bench/scaleout.py [--articles 10000]``.
See bench/README.md for the results.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import math
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # `python bench/scaleout.py` puts bench/ first, whose feeds.py is not ours
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402

from config.settings import Settings  # noqa: E402
from tests.support.cluster import (  # noqa: E402
    FEED,
    SOURCE,
    Cluster,
    ClusterError,
    HookReceiver,
    TimedSite,
    cpu_seconds,
    descendants,
    machine_busy,
    percentile,
    pushed_articles,
    write_config,
)
from tests.support.services import PostgresServer, RedisServer  # noqa: E402

PUSH_PREFIX = "https://partner.scale.example/story"


@dataclass
class Run:
    """What one scale-out run measured."""

    articles: int
    push_s: float = math.nan
    wall_s: float = math.nan
    latencies_ms: list[float] = field(default_factory=list)
    tasks: Counter[str] = field(default_factory=Counter)
    task_seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: float = math.nan  # CPU seconds of every deployment process, first push to last delivery
    floor_cpu_s: float = math.nan  # the same during the floor run
    floor_tasks: int = 0
    cpu_by_role: dict[str, float] = field(default_factory=dict)  # CPU seconds per process role
    idle_cores: float = math.nan  # cores the deployment used while idle, before the pushes
    requeued: dict[str, int] = field(default_factory=dict)  # what the sweeps re-enqueued, by kind
    floor_s: float = math.nan
    cores: dict[str, float] = field(default_factory=dict)
    spread: dict[str, int] = field(default_factory=dict)
    crawl_count: int = 0
    checks: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Articles delivered per second, first push to last delivery."""
        return self.articles / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def tasks_per_article(self) -> float:
        """Pipeline tasks per pushed article (crawl and sweep ticks left out)."""
        work = sum(
            c for name, c in self.tasks.items() if name not in ("syndicate.crawl_source", "syndicate.sweep")
        )
        return work / self.articles

    @property
    def floor_rate(self) -> float:
        """No-op tasks per second through the same workers."""
        return self.floor_tasks / self.floor_s if self.floor_s > 0 else math.nan

    @property
    def floor_articles(self) -> float:
        """The no-op rate as articles/s: what the pipeline would reach if its tasks cost nothing."""
        return self.floor_rate / self.tasks_per_article

    def check(self, name: str, detail: str, ok: bool) -> None:
        """Record one check."""
        self.checks.append((name, detail, ok))


def check_database(run: Run, database_url: str, accepted: dict[int, float], site_pages: int) -> None:
    """Articles and shares as the database holds them."""
    from worker.store.db import make_engine
    from worker.store.models import Article, Share, Source

    engine = make_engine(Settings(database_url=database_url).effective_database_url)
    try:
        with engine.connect() as conn:
            pushed = conn.execute(
                select(Article.id, Article.status, Article.canonical_url).where(
                    Article.url.like(PUSH_PREFIX + "%")
                )
            ).all()
            crawled = conn.execute(
                select(Article.status, func.count())
                .join(Source)
                .where(Source.name == SOURCE)
                .group_by(Article.status)
            ).all()
            shares = conn.execute(select(Share.article_id, Share.endpoint, Share.status)).all()
            crawl_count = conn.scalar(select(Source.crawl_count).where(Source.name == SOURCE)) or 0
    finally:
        engine.dispose()
    statuses = Counter(status for _, status, _ in pushed)
    urls = Counter(url for _, _, url in pushed)
    run.check(
        "pushed articles ready once",
        f"{statuses.get('ready', 0)} ready of {len(pushed)} rows, {len(urls)} distinct URLs, "
        f"N={run.articles}",
        statuses.get("ready", 0) == run.articles == len(pushed) == len(urls)
        and set(accepted) == {i for i, _, _ in pushed},
    )
    crawled_status = dict(crawled)
    run.check(
        "crawled articles ready once",
        f"{crawled_status} (site has {site_pages})",
        crawled_status.get("ready", 0) == site_pages and sum(crawled_status.values()) == site_pages,
    )
    pairs = Counter((a, e) for a, e, _ in shares)
    sent = Counter(s for _, _, s in shares)
    pushed_ids = {i for i, _, _ in pushed}
    run.check(
        "one share per (article, endpoint), all sent",
        f"{len(shares)} rows, {dict(sent)}, max per pair {max(pairs.values(), default=0)}",
        all(c == 1 for c in pairs.values())
        and {a for a, _ in pairs} == pushed_ids
        and sent == {"sent": run.articles},
    )
    run.crawl_count = int(crawl_count)


def check_receiver(run: Run, receiver: HookReceiver, accepted: dict[int, float], t0: float) -> None:
    """Deliveries as the webhook receiver saw them: once each; latency and throughput."""
    got = receiver.deliveries()
    per_article = Counter(a for _, _, a, _ in got)
    ids = Counter(w for _, w, _, _ in got)
    dupes = sum(c - 1 for c in per_article.values() if c > 1)
    run.check(
        "each pushed article delivered once",
        f"{len(got)} deliveries, {len(per_article)} articles, {len(ids)} webhook-ids, {dupes} duplicates",
        set(per_article) == set(accepted) and dupes == 0 and len(ids) == len(got),
    )
    first: dict[int, float] = {}
    for seen, _, article, _ in sorted(got):
        first.setdefault(article, seen)
    run.latencies_ms = [(first[a] - accepted[a]) * 1000 for a in accepted if a in first]
    run.wall_s = max(first.values()) - t0 if first else math.nan


def check_beat(run: Run, cluster: Cluster) -> None:
    """Beat ticks: one beat sends; one crawl per tick, crawls (listing fetches) a schedule apart."""
    sends = cluster.beat_sends()
    senders = [name for name, count in sends.items() if count]
    ticks = sum(sends.values())
    listing = cluster.site.gaps("/news/")
    run.check(
        "beat sends each tick once",
        f"{ticks} ticks sent by {senders or 'nobody'} of {len(sends)} beat(s); {run.crawl_count} crawls "
        f"(ticks + the start-up crawl); listing fetches min gap {min(listing, default=math.nan):.2f}s "
        f"(schedule {cluster.schedule:.0f}s)",
        len(senders) == 1
        and run.crawl_count == ticks + 1
        and len(listing) + 1 == run.crawl_count
        and all(g >= cluster.schedule * 0.8 for g in listing),
    )


def check_politeness(run: Run, site: TimedSite, interval: float) -> None:
    """Gaps between requests at the partner site, whichever worker sent them."""
    requests_seen = site.requests()
    gaps = site.gaps()
    paths = Counter(p for _, p in requests_seen)
    stories = [c for p, c in paths.items() if p.startswith("/news/story-")]
    run.check(
        "per-host interval across workers",
        f"{len(requests_seen)} requests, min gap {min(gaps, default=math.nan):.3f}s, "
        f"median {statistics.median(gaps) if gaps else math.nan:.3f}s (interval {interval:.2f}s)",
        bool(gaps) and min(gaps) >= interval - 0.05,
    )
    run.check(
        "each story page fetched once",
        f"{len(stories)} pages, fetches per page {sorted(set(stories))}",
        bool(stories) and set(stories) == {1},
    )


def check_feeds(run: Run, cluster: Cluster) -> None:
    """Both web processes serve the same feed bytes and ETag (as rendered by whichever worker)."""
    seen: list[tuple[int, str | None, bytes]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = []
        for base in cluster.web_urls:
            answer = requests.get(f"{base}/feeds/{FEED}.rss", timeout=10)
            seen.append((answer.status_code, answer.headers.get("ETag"), answer.content))
        if len({s[1:] for s in seen}) == 1 and seen[0][0] == 200:
            break
        time.sleep(0.5)
    run.check(
        "web processes serve the same feed",
        f"statuses {[s[0] for s in seen]}, ETags {[s[1] for s in seen]}, "
        f"{len(seen[0][2]) if seen else 0} bytes",
        bool(seen) and len({s[1:] for s in seen}) == 1 and seen[0][0] == 200,
    )


def run_cluster(
    args: argparse.Namespace, tmp: Path, redis_server: RedisServer, database_url: str, pg_data: Path | None
) -> Run:
    """One scale-out run (see the module docstring)."""
    site, receiver = TimedSite(args.site_pages), HookReceiver()
    cluster = Cluster(
        tmp=tmp,
        redis_server=redis_server,
        database_url=database_url,
        site=site,
        receiver=receiver,
        workers=args.workers,
        webs=args.webs,
        beats=args.beats,
        concurrency=args.concurrency,
        host_interval=args.host_interval,
        schedule=args.schedule,
    )
    run = Run(articles=args.articles)
    articles = pushed_articles(args.articles, PUSH_PREFIX)
    try:
        cluster.start()
        print(f"cluster up: {len(cluster.machines)} machines, webs {cluster.web_urls}", flush=True)
        # The start-up crawl of the scheduled source, so that its tasks do not count as the pushes'.
        cluster.wait_for(
            lambda: cluster.drained(0.2) and len(site.requests()) > args.site_pages, 120, "the first crawl"
        )
        offsets = cluster.log_offsets()
        assert redis_server.proc is not None

        def ours() -> list[int]:  # every deployment process, Redis and PostgreSQL's backends
            return [*cluster.pids(), redis_server.proc.pid, *postgres_pids(pg_data)]  # type: ignore[union-attr]

        pids = ours()
        # What the deployment burns doing nothing (heartbeats, beat, sweeps, pollers): part of the
        # CPU per article of a run that lasts long enough, none of the floor's.
        idle0, idle_t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(args.idle_seconds)
        run.idle_cores = (cpu_seconds(pids) - idle0) / (time.monotonic() - idle_t0)
        roles = {
            **cluster.pids_by_role(),
            "redis": [redis_server.proc.pid],
            "postgresql": postgres_pids(pg_data),
        }
        by_role0 = {role: cpu_seconds(p) for role, p in roles.items()}
        cpu0, busy0, m0 = cpu_seconds(pids), machine_busy(), time.monotonic()
        t0, accepted, errors = cluster.push(articles, threads=args.threads, rate=args.rate)
        run.push_s = time.time() - t0
        print(f"pushed {len(accepted)} in {run.push_s:.1f}s ({len(errors)} errors)", flush=True)
        if errors:
            raise ClusterError(f"{len(errors)} pushes failed, e.g. {errors[:3]}")
        wanted = set(accepted)

        def delivered() -> bool:
            return wanted <= {a for _, _, a, _ in receiver.deliveries()}

        cluster.wait_for(delivered, args.timeout, f"{len(wanted)} deliveries")
        cpu1, busy1, m1 = cpu_seconds(pids), machine_busy(), time.monotonic()
        run.cpu_by_role = {role: cpu_seconds(p) - by_role0[role] for role, p in roles.items()}
        cluster.wait_for(lambda: cluster.drained(0.2), 120, "the queues to drain")
        run.cores = {"deployment": (cpu1 - cpu0) / (m1 - m0), "machine": (busy1 - busy0) / (m1 - m0)}
        run.cpu_s = cpu1 - cpu0
        run.task_seconds = cluster.task_seconds(offsets)
        run.tasks = cluster.task_counts(offsets)
        run.spread = cluster.tasks_by_worker("syndicate.deliver_share")
        run.requeued = dict(cluster.sweep_requeued(offsets))
        check_receiver(run, receiver, accepted, t0)
        check_database(run, database_url, accepted, args.site_pages)
        check_beat(run, cluster)
        check_politeness(run, site, args.host_interval)
        check_feeds(run, cluster)
        trouble = cluster.trouble()
        run.check("clean logs", f"{dict(trouble) or 'no tracebacks or ERROR lines'}", not trouble)
        cluster.stop_beats()
        run.floor_tasks = args.noop_tasks or args.articles
        pids = ours()
        cpu0 = cpu_seconds(pids)
        run.floor_s, _ = cluster.floor(run.floor_tasks, args.timeout)
        run.floor_cpu_s = cpu_seconds(pids) - cpu0
    finally:
        cluster.stop()
        site.close()
        receiver.close()
    return run


def report(args: argparse.Namespace, run: Run) -> str:
    """The Markdown table printed at the end."""
    lat = run.latencies_ms
    ratio = run.rate / run.floor_articles
    floor_cpu_task = run.floor_cpu_s / run.floor_tasks if run.floor_tasks else math.nan
    cpu_ratio = floor_cpu_task * run.tasks_per_article / (run.cpu_s / run.articles)
    per_task = ", ".join(
        f"{name.removeprefix('syndicate.')} {count / run.articles:.2f}"
        for name, count in sorted(run.tasks.items())
    )
    lines = [
        f"Scale-out: {args.articles} articles pushed over {args.webs} web processes, {args.workers} workers "
        f"x --concurrency {args.concurrency}, {args.beats} beat(s), PostgreSQL + Redis; "
        f"{os.cpu_count()} cores, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| pushes (202) | {run.articles} in {run.push_s:.1f} s ({run.articles / run.push_s:.0f}/s) |",
        f"| throughput, first push → last delivery | {run.rate:.1f} articles/s ({run.wall_s:.1f} s) |",
        f"| latency p50 / p95 / p99 (202 → webhook seen) | {percentile(lat, 0.5) / 1000:.2f} / "
        f"{percentile(lat, 0.95) / 1000:.2f} / {percentile(lat, 0.99) / 1000:.2f} s |",
        f"| tasks per article | {run.tasks_per_article:.2f} ({per_task}) |",
        f"| no-op floor, same workers | {run.floor_rate:.0f} tasks/s "
        f"({run.floor_tasks} in {run.floor_s:.1f} s) |",
        f"| floor as articles/s (÷ tasks per article) | {run.floor_articles:.1f} |",
        f"| **pipeline vs floor** | **{ratio:.2f}x** |",
        f"| CPU per article: workers, webs, beat, Redis, PostgreSQL "
        f"| {run.cpu_s / run.articles * 1000:.1f} ms |",
        f"| CPU per no-op task x tasks per article | {floor_cpu_task * 1000:.2f} ms "
        f"x {run.tasks_per_article:.2f} = {floor_cpu_task * run.tasks_per_article * 1000:.1f} ms |",
        f"| **pipeline vs floor, by CPU** (robust to other users of the machine) | **{cpu_ratio:.2f}x** |",
        f"| idle deployment (before the pushes) | {run.idle_cores:.3f} cores = "
        f"{run.idle_cores * run.wall_s / run.articles * 1000:.1f} ms per article over this run |",
        "| CPU per article by role | "
        + ", ".join(
            f"{role} {seconds / run.articles * 1000:.1f} ms"
            for role, seconds in sorted(run.cpu_by_role.items(), key=lambda kv: -kv[1])
        )
        + " |",
        f"| cores busy during the run (ours / whole machine) | {run.cores.get('deployment', math.nan):.2f} / "
        f"{run.cores.get('machine', math.nan):.2f} |",
        f"| deliveries per worker | {run.spread} |",
        f"| re-enqueued by the sweeps | {run.requeued or 'nothing'} |",
        "",
        "| task | per article | median s | p95 s | sum s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {name.removeprefix('syndicate.')} | {len(times) / run.articles:.2f} "
            f"| {statistics.median(times):.4f} | {percentile(times, 0.95):.4f} | {sum(times):.1f} |"
            for name, times in sorted(run.task_seconds.items(), key=lambda kv: -sum(kv[1]))
        ),
        "",
        "| check | result | |",
        "| --- | --- | --- |",
        *(f"| {name} | {detail} | {'ok' if ok else '**FAILED**'} |" for name, detail, ok in run.checks),
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- --profile


@contextmanager
def counting(engine: Any) -> Iterator[Counter[str]]:
    """Count SQL statements and commits on ``engine`` while the block runs."""
    counts: Counter[str] = Counter()

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        counts["statements"] += 1
        if os.environ.get("SCALEOUT_SQL"):
            print("SQL", " ".join(sql.split())[:160], file=sys.stderr)

    def commit(*_args: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


def postgres_pids(data_dir: Path | None) -> list[int]:
    """The postmaster and its backends (for their CPU time); none for an outside ``--database-url``."""
    if data_dir is None:
        return []
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [postmaster, *descendants(postmaster)]


def profile_stages(args: argparse.Namespace, tmp: Path, database_url: str, pg_data: Path | None) -> str:
    """The four stages of ``args.profile`` pushed articles in this process, timed, counted and profiled.

    CPU is this process's (``time.process_time``) and the PostgreSQL server's (its backends' ``/proc``
    times), so a cost moved from Python into more SQL round trips does not hide; cProfile itself
    counts CPU time, not time spent waiting for the database.
    """
    from config import load_config
    from worker.ingest import PushedArticle, ingest_article
    from worker.outbox.delivery import deliver_share
    from worker.outbox.planning import plan_shares
    from worker.process import process_article
    from worker.render import render_and_publish
    from worker.runtime import Runtime, set_runtime
    from worker.store.db import get_engine, upgrade

    site, receiver = TimedSite(1), HookReceiver()
    config_path = tmp / "syndicate.yaml"
    write_config(config_path, site, receiver.url, host_interval=0.01, schedule=900)
    os.environ.update({"SCALE_API_TOKEN": "x", "SCALE_HOOK_SECRET": "whsec_" + "A" * 43})
    settings = Settings(
        database_url=database_url, redis_url=args.redis_url, public_url="http://feeds.scale.example"
    )
    upgrade(settings.effective_database_url)
    import redis

    rt = Runtime(
        settings=settings, config=load_config(config_path), redis_client=redis.Redis.from_url(args.redis_url)
    )
    set_runtime(rt)
    engine = get_engine(settings.effective_database_url)
    items = [PushedArticle(**{**a, "published": None}) for a in pushed_articles(args.profile, PUSH_PREFIX)]
    # Warm up: the first articles pay imports, connections and prepared statements.
    for item in items[:20]:
        article_id, _ = ingest_article(rt, item)
        process_article(rt, article_id)
        for share_id in plan_shares(rt, article_id):
            deliver_share(rt, share_id)
    items = items[20:]
    half = len(items) // 2
    n = half
    ids: dict[bool, list[int]] = {}
    shares: dict[bool, list[int]] = {}
    rows = []
    profiler = cProfile.Profile(time.process_time)
    # Each stage twice: timed on one half of the articles, then under cProfile on the other half.
    renders = 10
    for stage, profiled in itertools.product(
        ("ingest", "process", "plan", "deliver", "render"), (False, True)
    ):
        pg = postgres_pids(pg_data)
        with counting(engine) as counts:
            wall0, cpu0, pg0 = time.perf_counter(), time.process_time(), cpu_seconds(pg)
            if profiled:
                profiler.enable()
            if stage == "ingest":
                batch = items[half:] if profiled else items[:half]
                ids[profiled] = [ingest_article(rt, item)[0] for item in batch]
            elif stage == "process":
                for article_id in ids[profiled]:
                    process_article(rt, article_id)
            elif stage == "plan":
                shares[profiled] = [s for article_id in ids[profiled] for s in plan_shares(rt, article_id)]
            elif stage == "deliver":
                for share_id in shares[profiled]:
                    deliver_share(rt, share_id)
            else:  # render and publish (Redis, export dir) every format over every stored article
                for _ in range(renders):
                    render_and_publish(rt, FEED, rt.redis_client)
            profiler.disable()
            wall, cpu, pg_cpu = time.perf_counter() - wall0, time.process_time() - cpu0, cpu_seconds(pg) - pg0
        if not profiled:  # cProfile's own cost would inflate these
            n = renders if stage == "render" else half
            rows.append(
                f"| {stage} | {wall / n * 1000:.2f} | {cpu / n * 1000:.2f} | {pg_cpu / n * 1000:.2f} "
                f"| {counts['statements'] / n:.1f} | {counts['commits'] / n:.1f} |"
            )
    site.close()
    receiver.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"/(worker|feeds|config)/", 40)
    return "\n".join(
        [
            f"In-process stages, {half} articles after 20 warm-up ones (and {half} more under cProfile), "
            f"then {renders} renders of feed {FEED!r} over all {len(items) + 20} articles (per render), "
            "PostgreSQL "
            f"(load {' '.join(f'{x:.1f}' for x in os.getloadavg())}):",
            "",
            "| stage | wall ms/article | our CPU ms | PostgreSQL CPU ms | SQL statements | commits |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            out.getvalue(),
        ]
    )


# ------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000, help="articles pushed (N)")
    parser.add_argument("--workers", type=int, default=3, help="worker machines")
    parser.add_argument("--webs", type=int, default=2, help="web machines")
    parser.add_argument(
        "--beats", type=int, default=1, help="beat processes (one leads, the others stand by)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--threads", type=int, default=4, help="concurrent pushes")
    parser.add_argument("--rate", type=float, default=0.0, help="pushes per second (0: as fast as possible)")
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="idle CPU measured for this long first (default 5)"
    )
    parser.add_argument("--noop-tasks", type=int, help="tasks in the floor run (default: N)")
    parser.add_argument("--site-pages", type=int, default=20, help="stories on the crawled partner site")
    parser.add_argument("--host-interval", type=float, default=0.3, help="fetch.host_interval, seconds")
    parser.add_argument("--schedule", type=float, default=10.0, help="the crawled source's schedule, seconds")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the deliveries may take")
    parser.add_argument("--database-url", help="a throwaway PostgreSQL database (default: a new cluster)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, every process's log)")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="K", help="profile the stages in-process instead"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or the profile) and print the table."""
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="syn-scaleout-"))
    redis_server = RedisServer().start()
    # Before anything imports worker.app (its Celery app reads REDIS_URL then): in-process stages enqueue
    # and pace through it too, and without this they would talk to 127.0.0.1:6379.
    os.environ["REDIS_URL"] = redis_server.url
    postgres: PostgresServer | None = None
    try:
        database_url = args.database_url
        if database_url is None:
            postgres = PostgresServer().start()
            database_url = postgres.url()
        if args.profile:
            args.redis_url = redis_server.url
            print(profile_stages(args, tmp, database_url, postgres.data if postgres else None))
            return 0
        run = run_cluster(args, tmp, redis_server, database_url, postgres.data if postgres else None)
    except ClusterError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        redis_server.stop()
        if postgres is not None:
            postgres.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(report(args, run))
    return 0 if all(ok for _, _, ok in run.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
