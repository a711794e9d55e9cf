"""Feed serving and commit-to-served benchmark.

Everything is real and local: a redis-server (``tests.support.services``), a SQLite database in a temp
dir, 50 articles pushed through the real pipeline and rendered and published as the worker does
(``worker.render.render_and_publish``: renders in the database, pre-compressed copies in Redis, files in
the export directory), and these servers, all started by this script:

* **app**: ``uvicorn`` with ``worker.web.app.server_options()`` (httptools + uvloop when installed, no access
  log), one process; also once with ``http=h11, loop=asyncio`` to show what the fast parser buys.
* **production path**: nginx with ``deploy/nginx/default.conf.template`` (gzip_static, ETag, Link
  headers), serving the exported files and proxying the rest to the app.
* **nginx static**: the same nginx process, a second server block serving the same bytes (plain and
  the .gz file) as plain static files: the floor the goal is measured against.

(1) **serve**: ``wrk`` (``ab`` if wrk is missing) against each, for 200 plain, 200 gzip and 304
(``If-None-Match`` with the ETag each server sent), ``--repeat`` runs each, interleaved; medians.
(2) **commit-to-served**: a real ``syndicate worker`` and the app; single articles pushed through
``POST /api/articles`` (spaced beyond the render window, so each is a "first change"); the time from the
202 (the article is committed) until ``GET /feeds/all.json`` from the app carries it, polled every 2 ms.

nginx and wrk/ab are installed from Debian if missing (``apt-get install -y nginx wrk apache2-utils``).
Run from the repository root: ``.venv/bin/python bench/feeds.py [--repeat 3] [--duration 5]``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/feeds.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from tests.support.services import RedisServer, Syndicate, free_port, wait_port  # noqa: E402

TEMPLATE = ROOT / "deploy" / "nginx" / "default.conf.template"
HUB = "https://hub.example.test/"
TOKEN = "bench-token"
ITEMS = 50
PARAGRAPH = (
    "<p>The cluster's members met in Cluj to agree on a shared training programme for engineers, "
    "with courses in embedded systems, data engineering and product management.</p>"
)


WORDS = (
    "cluster partners engineers training hub members agreement programme software region university "
    "students investment export market product innovation digital services research funding pilot "
    "companies startup network delegation visit signed memorandum exchange skills data cloud security"
).split()


def article_html(n: int) -> str:
    """About 1.5 KB of varied prose (a repeated paragraph would gzip 40:1, real articles about 3:1)."""
    rng = random.Random(n)
    paragraphs = []
    for _ in range(6):
        words = [rng.choice(WORDS) for _ in range(40)]
        paragraphs.append(f"<p>{' '.join(words).capitalize()} {rng.randint(10, 99_999)}.</p>")
    return "".join(paragraphs)


def ensure_tools() -> str:
    """Install nginx and wrk/ab from Debian if missing; return the load tool's name."""
    missing = [pkg for pkg, exe in (("nginx", "nginx"), ("wrk", "wrk")) if not _which(exe)]
    if missing:
        subprocess.run(
            ["apt-get", "install", "-y", *missing, "apache2-utils"], check=False, capture_output=True
        )
    if not _which("nginx"):
        raise SystemExit("nginx is not installed and apt-get could not install it")
    if _which("wrk"):
        return "wrk"
    if _which("ab"):
        return "ab"
    raise SystemExit("neither wrk nor ab is installed")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def config(base: str, hub: str | None = HUB) -> dict[str, object]:
    """The YAML config of the bench: one push source, one feed of 50, the hub."""
    data: dict[str, object] = {
        "api": {"token": "${BENCH_TOKEN}"},
        "feeds": [{"name": "all", "title": "All partner news", "limit": ITEMS}],
    }
    if hub:
        data["websub"] = {"hub": hub}
    return data


def env_for(tmp: Path, redis_url: str, base: str) -> dict[str, str]:
    """The environment of every process of one run."""
    return {
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "REDIS_URL": redis_url,
        "SYNDICATE_CONFIG": str(tmp / "syndicate.yaml"),
        "SYNDICATE_VAR_DIR": str(tmp / "var"),
        "SYNDICATE_FEED_DIR": str(tmp / "export" / "feeds"),
        "SYNDICATE_PUBLIC_URL": base,
        "SYNDICATE_LOG_LEVEL": "WARNING",
        "BENCH_TOKEN": TOKEN,
    }


APP_CODE = (
    "import os, uvicorn\n"
    "from worker.web.app import create_web_app, server_options\n"
    "opts = server_options('warning')\n"
    "opts.update(eval(os.environ.get('BENCH_UVICORN', '{}')))\n"
    "uvicorn.run(create_web_app(), host='127.0.0.1', port=int(os.environ['BENCH_PORT']), **opts)\n"
)


@contextmanager
def app_server(env: dict[str, str], port: int, overrides: str = "{}") -> Iterator[subprocess.Popen[bytes]]:
    """The app under uvicorn with its production settings (or ``overrides``) on ``port``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", APP_CODE],
        env={**os.environ, **env, "BENCH_PORT": str(port), "BENCH_UVICORN": overrides},
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        wait_port(port, 30, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def nginx_conf(tmp: Path, prod_port: int, static_port: int, app_port: int, base: str) -> Path:
    """A whole nginx.conf: the deploy template (production path) and a plain static server."""
    server = TEMPLATE.read_text(encoding="utf-8")
    for name, value in {
        "SYNDICATE_FEED_ROOT": str(tmp / "export"),
        "SYNDICATE_WEB_UPSTREAM": f"127.0.0.1:{app_port}",
        "SYNDICATE_PUBLIC_URL": base,
        "SYNDICATE_WEBSUB_HUB": HUB,
    }.items():
        server = server.replace("${" + name + "}", value)
    server = server.replace("listen 80;", f"listen 127.0.0.1:{prod_port};")
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n"
        f"  client_body_temp_path {tmp}/nginx-body;\n  proxy_temp_path {tmp}/nginx-proxy;\n"
        f"  fastcgi_temp_path {tmp}/nginx-fcgi;\n  uwsgi_temp_path {tmp}/nginx-uwsgi;\n"
        f"  scgi_temp_path {tmp}/nginx-scgi;\n"
        f"{server}\n"
        f"  server {{\n    listen 127.0.0.1:{static_port};\n    root {tmp / 'static'};\n"
        "    default_type application/octet-stream;\n  }\n}\n",
        encoding="utf-8",
    )
    return conf


@contextmanager
def nginx(conf: Path, ports: tuple[int, ...]) -> Iterator[None]:
    """nginx in the foreground on ``conf``; stopped by its PID afterwards."""
    exe = _which("nginx")
    assert exe
    proc = subprocess.Popen([exe, "-c", str(conf), "-g", "daemon off;"], start_new_session=True)
    try:
        for port in ports:
            wait_port(port, 10, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def load(
    tool: str, url: str, headers: dict[str, str], duration: float, connections: int
) -> tuple[float, str]:
    """Requests per second and the status seen, from ``wrk`` (or ``ab``)."""
    status = str(requests.get(url, headers=headers, timeout=5).status_code)
    if tool == "wrk":
        args = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            status += f" ({non2xx.group(1)} errors)"
    else:
        args = [
            "ab",
            "-k",
            "-q",
            "-c",
            str(connections),
            "-t",
            str(max(1, round(duration))),
            "-n",
            "10000000",
        ]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Requests per second:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"could not read the rate from {tool}: {out[-500:]}")
    return float(match.group(1)), status


def seed(env: dict[str, str]) -> None:
    """Migrate, push 50 articles through the real pipeline, render and publish as the worker does."""
    code = (
        "import redis\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from worker.runtime import get_runtime\n"
        "from worker.ingest import PushedArticle, ingest_article\n"
        "from worker.process import process_article\n"
        "from worker.render import render_and_publish\n"
        "from bench.feeds import article_html\n"
        "rt = get_runtime()\n"
        f"for n in range({ITEMS}):\n"
        "    aid, _ = ingest_article(rt, PushedArticle(url=f'https://partner.example/news/{n}',\n"
        f"        title=f'Story number {{n}} about the cluster', content_html=article_html(n),\n"
        "        published=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n)))\n"
        "    process_article(rt, aid)\n"
        "assert render_and_publish(rt, 'all', redis.Redis.from_url(rt.settings.effective_redis_url))\n"
    )
    syn = Syndicate.make(ROOT, env)
    res = syn.run("migrate")
    if res.returncode:
        raise SystemExit(res.stderr)
    done = subprocess.run([sys.executable, "-c", code], env=syn.env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)


def etag(url: str, headers: dict[str, str]) -> str:
    """The ETag a server sends for ``url`` with ``headers``."""
    return requests.get(url, headers=headers, timeout=5).headers["ETag"]


def run_serve(args: argparse.Namespace, tool: str, tmp: Path, redis_url: str) -> None:
    """Benchmark (1): requests/s per server and case."""
    tmp.chmod(0o755)  # nginx's workers run as another user
    app_port, h11_port, prod_port, static_port = (free_port() for _ in range(4))
    base = f"http://127.0.0.1:{prod_port}"
    env = env_for(tmp, redis_url, base)
    (tmp / "syndicate.yaml").write_text(yaml.safe_dump(config(base)), encoding="utf-8")
    seed(env)
    exported = tmp / "export" / "feeds" / "all.rss"
    static = tmp / "static"
    (static / "feeds").mkdir(parents=True)
    shutil.copyfile(exported, static / "feeds" / "all.rss")
    shutil.copyfile(exported.with_name("all.rss.gz"), static / "feeds" / "all.rss.gz")
    size = exported.stat().st_size
    gz_size = exported.with_name("all.rss.gz").stat().st_size
    conf = nginx_conf(tmp, prod_port, static_port, app_port, base)
    plain = {"Accept-Encoding": "identity"}
    zipped = {"Accept-Encoding": "gzip"}
    targets = {
        "app (httptools+uvloop)": f"http://127.0.0.1:{app_port}/feeds/all.rss",
        "app (h11+asyncio)": f"http://127.0.0.1:{h11_port}/feeds/all.rss",
        "production path (nginx)": f"{base}/feeds/all.rss",
        "nginx static file": f"http://127.0.0.1:{static_port}/feeds/all.rss",
    }
    results: dict[tuple[str, str], list[float]] = {}
    statuses: dict[tuple[str, str], str] = {}
    h11 = "{'http': 'h11', 'loop': 'asyncio'}"
    with app_server(env, app_port), app_server(env, h11_port, h11), nginx(conf, (prod_port, static_port)):
        cases: dict[str, dict[str, dict[str, str]]] = {}
        for name, url in targets.items():
            gz_url = url + ".gz" if name == "nginx static file" else url
            cases[name] = {
                "200 plain": {"url": url, **plain},
                "200 gzip": {"url": gz_url, **(plain if name == "nginx static file" else zipped)},
                "304": {"url": url, **plain, "If-None-Match": etag(url, plain)},
            }
        for run in range(args.repeat):
            for case in ("200 plain", "200 gzip", "304"):
                for name in targets:
                    spec = dict(cases[name][case])
                    url = spec.pop("url")
                    rate, status = load(tool, url, spec, args.duration, args.connections)
                    results.setdefault((name, case), []).append(rate)
                    statuses[(name, case)] = status
                    print(f"  run {run + 1} {case:9} {name:26} {rate:10.0f}/s  [{status}]", flush=True)
    print(
        f"\n### Serve: a {ITEMS}-item RSS feed ({size:,} bytes, {gz_size:,} gzipped), {tool}, "
        f"{args.connections} connections, {args.duration:.0f} s x {args.repeat}, medians, "
        f"{os.cpu_count()} CPUs shared by server and load generator\n"
    )
    print("| server | 200 plain req/s | 200 gzip req/s | 304 req/s | vs nginx static (200 / gzip / 304) |")
    print("|---|---:|---:|---:|---|")
    floor = {
        case: statistics.median(results[("nginx static file", case)])
        for case in ("200 plain", "200 gzip", "304")
    }
    for name in targets:
        med = {case: statistics.median(results[(name, case)]) for case in ("200 plain", "200 gzip", "304")}
        ratio = " / ".join(f"{med[c] / floor[c]:.0%}" for c in med)
        print(f"| {name} | {med['200 plain']:,.0f} | {med['200 gzip']:,.0f} | {med['304']:,.0f} | {ratio} |")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def run_latency(args: argparse.Namespace, tmp: Path, redis_url: str) -> None:
    """Benchmark (2): commit-to-served through a real worker and the app."""
    app_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    env = env_for(tmp, redis_url, base)
    (tmp / "syndicate.yaml").write_text(yaml.safe_dump(config(base, hub=None)), encoding="utf-8")
    syn = Syndicate.make(tmp, env)
    res = syn.run("migrate")
    if res.returncode:
        raise SystemExit(res.stderr)
    syn.start("worker", "worker", "--concurrency", "2")
    session = requests.Session()
    latencies: list[float] = []
    try:
        with app_server(env, app_port):
            feed = f"{base}/feeds/all.json"
            # Warm up: the first article also waits for the worker to be ready.
            deadline = time.monotonic() + 60
            push(session, base, 0)
            while "Story 0 " not in session.get(feed, timeout=5).text and time.monotonic() < deadline:
                time.sleep(0.05)
            for n in range(1, args.articles + 1):
                time.sleep(0.6)  # beyond the render window: each article is a first change
                pushed = push(session, base, n)
                needle = f"Story {n} "
                while True:
                    answer = session.get(feed, timeout=5)
                    if answer.status_code == 200 and needle in answer.text:
                        latencies.append((time.monotonic() - pushed) * 1000)
                        break
                    if time.monotonic() - pushed > 10:
                        raise SystemExit(f"article {n} not served after 10 s:\n{syn.logs()}")
                    time.sleep(0.002)
    finally:
        syn.stop()
    print(
        f"\n### Commit-to-served: {len(latencies)} single articles, POST /api/articles → 202 → "
        "worker (process, render, publish) → GET /feeds/all.json from the app\n"
    )
    print("| p50 ms | p95 ms | max ms |")
    print("|---:|---:|---:|")
    print(
        f"| {statistics.median(latencies):.0f} | {percentile(latencies, 0.95):.0f} | {max(latencies):.0f} |"
    )


def push(session: requests.Session, base: str, n: int) -> float:
    """Push article ``n``; return the monotonic time of the 202 (the article is committed)."""
    answer = session.post(
        f"{base}/api/articles",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "url": f"https://partner.example/latency/{n}",
            "title": f"Story {n} of the latency run",
            "content_html": PARAGRAPH * 4,
            "published": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        },
        timeout=10,
    )
    answer.raise_for_status()
    return time.monotonic()


def main() -> None:
    """Run both benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--articles", type=int, default=40)
    parser.add_argument("--only", choices=["serve", "latency"])
    args = parser.parse_args()
    tool = ensure_tools()
    server = RedisServer().start()
    try:
        if args.only != "latency":
            with tempfile.TemporaryDirectory(prefix="syn-bench-feeds-") as tmp:
                run_serve(args, tool, Path(tmp), f"redis://127.0.0.1:{server.port}/5")
        if args.only != "serve":
            redis.Redis.from_url(f"redis://127.0.0.1:{server.port}/6").flushdb()
            with tempfile.TemporaryDirectory(prefix="syn-bench-latency-") as tmp:
                run_latency(args, Path(tmp), f"redis://127.0.0.1:{server.port}/6")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
