"""A scale-out deployment on one host: machines that share only one Redis and one PostgreSQL.

Used by ``bench/scaleout.py`` and ``tests/integration/test_scale_out.py``. Each "machine" is a
directory with its own ``SYNDICATE_VAR_DIR`` (beat state, exported feeds) and its own processes:
``syndicate worker`` with a distinct ``--hostname``, ``syndicate web`` on its own port, ``syndicate
beat``; nothing is shared but the broker, the database and the config file. Around them run the
partner site a scheduled source crawls (:class:`TimedSite`, which logs when every request arrived, so
per-host politeness across the workers can be measured) and the webhook receiver every share goes to
(:class:`HookReceiver`, which logs when each ``webhook-id`` arrived).
"""

from __future__ import annotations

import base64
import contextlib
import html
import itertools
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests

from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from tests.support.storygen import events

TOKEN = "scale-out-token"
SECRET = "whsec_" + base64.b64encode(b"scale-out-webhook-secret-32bytes").decode()
SOURCE = "site"
FEED = "all"
PUBLIC_URL = "http://feeds.scale.example"
QUEUES = ("crawl", "fetch", "render", "share")
# Celery's trace line: "Task syndicate.noop[<id>] succeeded in 0.0012s: 3".
TASK_DONE = re.compile(rb"Task (syndicate\.\w+)\[[0-9a-f-]+\] succeeded in ([0-9.e-]+)s")
BEAT_SEND = re.compile(rb"Sending due task crawl:")
SWEEP_REQUEUED = re.compile(rb"re-enqueuing orphaned work (\{[^}]*\})")
LOG_TROUBLE = re.compile(rb"^Traceback|IntegrityError|\] ERROR/|\] CRITICAL/", re.MULTILINE)


class ClusterError(RuntimeError):
    """A process would not start, or the run did not finish in time."""


# ------------------------------------------------------------------------------- peers


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the workers' pooled sessions reuse connections
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's delayed
    # ACK of the headers (40 ms on Linux) on a kept-alive connection. Real servers set TCP_NODELAY.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class TimedSite:
    """A partner site on 127.0.0.1: ``/news/`` lists ``pages`` article pages; logs ``(time, path)``.

    The listing answers ``If-None-Match`` with 304, as a real site would for an unchanged page.
    """

    def __init__(self, pages: int) -> None:
        """Build the pages (generated events of their own: tests/support/storygen.py) and start serving."""
        self.log: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.paths = [f"/news/story-{i}.html" for i in range(pages)]
        self.events = events(pages, seed=2019, start=datetime(2019, 3, 1, tzinfo=UTC))
        links = "".join(
            f'<li><a class="story" href="{p}">Story {i}</a></li>' for i, p in enumerate(self.paths)
        )
        self.listing = f"<!doctype html><html><body><h1>News</h1><ul>{links}</ul></body></html>".encode()
        threading.Thread(target=self.httpd.serve_forever, name="timed-site", daemon=True).start()

    def _page(self, path: str) -> bytes | None:
        if path not in self.paths:
            return None
        title, paragraphs, _, published = self.events[self.paths.index(path)].write_up(0)
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<link rel="canonical" href="{self.base}{path}">'
            f'<meta property="article:published_time" content="{published.isoformat()}"></head>'
            f"<body><article><h1>{html.escape(title)}</h1>{body}</article></body></html>"
        ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                with owner.lock:
                    owner.log.append((time.time(), self.path))
                if self.path == "/robots.txt":
                    self._send(200, b"User-agent: *\nAllow: /\n", {"Content-Type": "text/plain"})
                    return
                if self.path == "/news/":
                    etag = '"listing-1"'
                    if self.headers.get("If-None-Match") == etag:
                        self._send(304, b"", {"ETag": etag})
                        return
                    self._send(200, owner.listing, {"Content-Type": "text/html", "ETag": etag})
                    return
                body = owner._page(self.path)
                if body is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                else:
                    self._send(200, body, {"Content-Type": "text/html; charset=utf-8"})

        return Handler

    def requests(self) -> list[tuple[float, str]]:
        """Every request so far, in arrival order."""
        with self.lock:
            return sorted(self.log)

    def gaps(self, path: str | None = None) -> list[float]:
        """Seconds between consecutive requests (of ``path`` only, if given), whichever worker sent them."""
        times = [t for t, p in self.requests() if path is None or p == path]
        return [b - a for a, b in itertools.pairwise(times)]

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


class HookReceiver:
    """A webhook receiver on 127.0.0.1: ``(arrival time, webhook-id, article id, url)`` per POST."""

    def __init__(self) -> None:
        """Start serving."""
        self.got: list[tuple[float, str, int, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, name="hook-receiver", daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen = time.time()
                data = json.loads(body).get("data", {})
                with owner.lock:
                    owner.got.append(
                        (
                            seen,
                            self.headers.get("webhook-id", ""),
                            int(data.get("article_id", 0)),
                            data["url"],
                        )
                    )
                self._send(200, b"{}", {"Content-Type": "application/json"})

        return Handler

    def count(self) -> int:
        """Deliveries so far."""
        with self.lock:
            return len(self.got)

    def deliveries(self) -> list[tuple[float, str, int, str]]:
        """A copy of every delivery so far."""
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------- the deployment


@dataclass
class Machine:
    """One simulated host: a directory, an environment and the ``syndicate`` processes it runs."""

    name: str
    syn: Syndicate
    web_port: int | None = None

    @property
    def worker_hostname(self) -> str:
        """The worker's Celery node name (``-n``)."""
        return f"worker@{self.name}"

    def log(self, process: str) -> Path:
        """The output file of one of this machine's processes."""
        return self.syn.cwd / f"{process}.log"


def write_config(path: Path, site: TimedSite, hook: str, *, host_interval: float, schedule: float) -> None:
    """The one config every machine reads: a scheduled listing source, a pushed source, a feed, a webhook."""
    path.write_text(
        f"""
fetch:
  allow_hosts: ["127.0.0.1"]
  host_interval: {host_interval}s
  timeout: 10s
api:
  token: "${{SCALE_API_TOKEN}}"
sources:
  - name: {SOURCE}
    kind: listing
    url: {site.base}/news/
    schedule: {schedule}s
    options: {{link_selector: "a.story"}}
feeds:
  - {{name: {FEED}, title: Everything, limit: 50}}
endpoints:
  - name: hook
    kind: webhook
    url: "{hook}"
    secret: "${{SCALE_HOOK_SECRET}}"
    story_window: 0
""",
        encoding="utf-8",
    )


@dataclass
class Cluster:
    """Machines that each run a worker; the first ``webs`` also serve HTTP, the first ``beats`` run beat."""

    tmp: Path
    redis_server: RedisServer
    database_url: str
    site: TimedSite
    receiver: HookReceiver
    workers: int = 3
    webs: int = 2
    beats: int = 1
    concurrency: int = 2
    host_interval: float = 0.3
    schedule: float = 5.0
    log_level: str = "INFO"
    machines: list[Machine] = field(default_factory=list)
    config: Path | None = None
    stopped: set[int] = field(default_factory=set)  # pids stopped on purpose

    def _machine(self, name: str, extra: dict[str, str]) -> Machine:
        cwd = self.tmp / name
        cwd.mkdir(parents=True, exist_ok=True)
        assert self.config is not None
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_server.url,
            "SYNDICATE_CONFIG": str(self.config),
            "SYNDICATE_VAR_DIR": str(cwd / "var"),
            "SYNDICATE_PUBLIC_URL": PUBLIC_URL,
            "SYNDICATE_LOG_LEVEL": self.log_level,
            "SCALE_API_TOKEN": TOKEN,
            "SCALE_HOOK_SECRET": SECRET,
            **extra,
        }
        return Machine(name=name, syn=Syndicate.make(cwd, env))

    def start(self, timeout: float = 90.0) -> None:
        """Migrate, then start every process and wait until workers answer pings and webs listen."""
        self.config = self.tmp / "syndicate.yaml"
        write_config(
            self.config,
            self.site,
            self.receiver.url,
            host_interval=self.host_interval,
            schedule=self.schedule,
        )
        count = max(self.workers, self.webs, self.beats)
        for i in range(count):
            port = free_port()
            machine = self._machine(f"host-{chr(ord('a') + i)}", {"SYNDICATE_HTTP_PORT": str(port)})
            machine.web_port = port if i < self.webs else None
            self.machines.append(machine)
        migrated = self.machines[0].syn.run("migrate")
        if migrated.returncode:
            raise ClusterError(f"syndicate migrate failed: {migrated.stderr[-3000:]}")
        for i, machine in enumerate(self.machines):
            if i < self.workers:
                machine.syn.start(
                    "worker",
                    "worker",
                    "--concurrency",
                    str(self.concurrency),
                    "--hostname",
                    machine.worker_hostname,
                )
            if machine.web_port is not None:
                machine.syn.start("web", "web")
        for machine in self.machines:
            if machine.web_port is not None:
                wait_port(machine.web_port, timeout, machine.syn.procs[-1][1])
        self.wait_workers(timeout)
        for machine in self.machines[: self.beats]:
            machine.syn.start("beat", "beat")

    def celery(self) -> Any:
        """The Celery app, pointed at this cluster's Redis (for pings and the floor's no-op tasks)."""
        from worker.app import app

        app.conf.broker_url = self.redis_server.url
        return app

    def wait_workers(self, timeout: float) -> None:
        """Block until every worker answers a ping."""
        app = self.celery()
        wanted = {m.worker_hostname for m in self.machines[: self.workers]}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for machine in self.machines:
                for name, proc in machine.syn.procs:
                    if proc.poll() is not None:
                        raise ClusterError(
                            f"{machine.name} {name} exited with {proc.returncode}:\n{self.logs()}"
                        )
            answered = {name for reply in app.control.ping(timeout=0.5) for name in reply}
            if wanted <= answered:
                return
        raise ClusterError(f"workers did not answer pings within {timeout:.0f}s:\n{self.logs()}")

    @property
    def web_urls(self) -> list[str]:
        """The base URL of every web process."""
        return [f"http://127.0.0.1:{m.web_port}" for m in self.machines if m.web_port is not None]

    def redis(self) -> redis.Redis:
        """A client for the cluster's Redis."""
        return redis.Redis.from_url(self.redis_server.url)

    # -- work

    def push(
        self, articles: Sequence[dict[str, Any]], threads: int = 4, rate: float = 0.0
    ) -> tuple[float, dict[int, float], list[str]]:
        """POST every article, round-robin over the web processes; return (t0, {id: accepted}, errors).

        ``rate`` > 0 paces the pushes (articles/s overall); 0 pushes as fast as ``threads`` allow.
        """
        urls = self.web_urls
        accepted: dict[int, float] = {}
        errors: list[str] = []
        lock = threading.Lock()
        local = threading.local()
        t0 = time.time()

        def one(index: int) -> None:
            if rate > 0:
                delay = t0 + index / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.headers["Authorization"] = f"Bearer {TOKEN}"
            base = urls[index % len(urls)]
            try:
                answer = session.post(f"{base}/api/articles", json=articles[index], timeout=60)
            except requests.RequestException as exc:
                with lock:
                    errors.append(f"{index}: {exc!r}")
                return
            done = time.time()
            with lock:
                if answer.status_code != 202 or answer.json().get("status") != "queued":
                    errors.append(f"{index}: {answer.status_code} {answer.text[:200]}")
                else:
                    accepted[int(answer.json()["id"])] = done

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(articles))))
        return t0, accepted, errors

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate`` until true; a process that died or the timeout raise :class:`ClusterError`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
            self.check_alive()
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise if a worker or web process exited (a standby beat may wait, but not exit)."""
        for machine in self.machines:
            for name, proc in machine.syn.procs:
                if proc.poll() is not None and proc.pid not in self.stopped:
                    raise ClusterError(f"{machine.name} {name} exited with {proc.returncode}:\n{self.logs()}")

    def drained(self, settle: float = 0.05) -> bool:
        """Whether every queue is empty and no message is unacked (held by a worker or waiting)."""
        client = self.redis()
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            pipe.hlen("unacked")
            if sum(pipe.execute()):
                return False
            time.sleep(settle)
        return True

    def floor(self, tasks: int, timeout: float) -> tuple[float, float]:
        """Send ``tasks`` no-op tasks to the same workers; return (seconds until drained, tasks/s)."""
        from worker.tasks import noop

        self.celery()
        started = time.monotonic()
        for i in range(tasks):
            noop.delay(i)
        self.wait_for(lambda: self.drained(0.002), timeout, "the no-op tasks to drain")
        wall = time.monotonic() - started
        return wall, tasks / wall

    def stop_beats(self) -> None:
        """SIGTERM every beat (the floor must not share the workers with crawls)."""
        for machine in self.machines:
            for name, proc in machine.syn.procs:
                if name == "beat" and proc.poll() is None:
                    self.stopped.add(proc.pid)
                    os.killpg(proc.pid, signal.SIGTERM)
                    with contextlib.suppress(Exception):
                        proc.wait(20)

    # -- what the processes logged

    def task_counts(self, offsets: dict[str, int] | None = None) -> Counter[str]:
        """Tasks each worker logged as succeeded (from ``offsets``, bytes per worker log, if given)."""
        return Counter({name: len(times) for name, times in self.task_seconds(offsets).items()})

    def task_seconds(self, offsets: dict[str, int] | None = None) -> dict[str, list[float]]:
        """The run time Celery logged for every succeeded task, by task name (from ``offsets`` on)."""
        seconds: dict[str, list[float]] = {}
        for machine in self.machines[: self.workers]:
            data = machine.log("worker").read_bytes()[(offsets or {}).get(machine.name, 0) :]
            for m in TASK_DONE.finditer(data):
                seconds.setdefault(m.group(1).decode(), []).append(float(m.group(2)))
        return seconds

    def tasks_by_worker(self, name: str) -> dict[str, int]:
        """How many ``name`` tasks each worker ran (work spread over the machines)."""
        return {
            m.name: sum(
                1 for x in TASK_DONE.finditer(m.log("worker").read_bytes()) if x.group(1) == name.encode()
            )
            for m in self.machines[: self.workers]
        }

    def sweep_requeued(self, offsets: dict[str, int] | None = None) -> Counter[str]:
        """What the sweeps re-enqueued, by kind, from the workers' logs (from ``offsets`` on)."""
        found: Counter[str] = Counter()
        for machine in self.machines[: self.workers]:
            data = machine.log("worker").read_bytes()[(offsets or {}).get(machine.name, 0) :]
            for m in SWEEP_REQUEUED.finditer(data):
                for kind, count in re.findall(rb"'(\w+)': (\d+)", m.group(1)):
                    found[kind.decode()] += int(count)
        return found

    def log_offsets(self) -> dict[str, int]:
        """Current size of every worker log (to count only what comes after)."""
        return {m.name: m.log("worker").stat().st_size for m in self.machines[: self.workers]}

    def beat_sends(self) -> dict[str, int]:
        """How many scheduled crawls each beat sent, by machine (a standby sends none)."""
        out: dict[str, int] = {}
        for machine in self.machines[: self.beats]:
            path = machine.log("beat")
            out[machine.name] = len(BEAT_SEND.findall(path.read_bytes())) if path.exists() else 0
        return out

    def trouble(self) -> Counter[str]:
        """Tracebacks, integrity errors and ERROR lines per process log."""
        found: Counter[str] = Counter()
        for machine in self.machines:
            for name, _ in machine.syn.procs:
                path = machine.log(name)
                if path.exists():
                    hits = len(LOG_TROUBLE.findall(path.read_bytes()))
                    if hits:
                        found[f"{machine.name}/{name}"] += hits
        return found

    def logs(self) -> str:
        """The tail of every process log, for failure messages."""
        return "\n".join(m.syn.logs() for m in self.machines)

    def pids(self) -> list[int]:
        """Every process (and pool child) of the deployment, for CPU accounting."""
        found: list[int] = []
        for machine in self.machines:
            for _, proc in machine.syn.procs:
                if proc.poll() is None:
                    found += [proc.pid, *descendants(proc.pid)]
        return found

    def pids_by_role(self) -> dict[str, list[int]]:
        """:meth:`pids` grouped by the process's role (``worker``, ``web``, ``beat``, ...)."""
        found: dict[str, list[int]] = {}
        for machine in self.machines:
            for name, proc in machine.syn.procs:
                if proc.poll() is None:
                    found.setdefault(name, []).extend([proc.pid, *descendants(proc.pid)])
        return found

    def stop(self) -> None:
        """Stop every process of every machine."""
        for machine in self.machines:
            with contextlib.suppress(Exception):
                machine.syn.stop()


def descendants(pid: int) -> list[int]:
    """Every child, grandchild, ... of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text(encoding="utf-8").split():
                found += [int(child), *descendants(int(child))]
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (Linux ``/proc``; 0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores), from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


def pushed_articles(n: int, prefix: str = "https://partner.scale.example/story") -> list[dict[str, Any]]:
    """``n`` distinct articles as the ingest API takes them (fields given, so nothing is fetched): each
    the write-up of a generated event of its own (tests/support/storygen.py), so that with stories on
    each is its own story, all of them on today's date (a harder test of the matcher than real news).

    They are dated within the last day: a pushed article dated well before its endpoint was added is
    back catalogue and not shared (fixed November dates aged into that and nothing was posted)."""
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.replace(hour=0, minute=0, second=0)
    out = []
    for i, event in enumerate(events(n, seed=len(prefix), start=today, per_day=n)):
        title, paragraphs, _, _ = event.write_up(0)
        out.append(
            {
                "url": f"{prefix}/{i}",
                "title": title,
                "content_html": "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs),
                "summary": paragraphs[0],
                "published": (now - timedelta(minutes=i % 1440)).isoformat().replace("+00:00", "Z"),
                "category": "Partnerships",
            }
        )
    return out


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """Start ``cluster`` and stop its processes (not Redis, the database or the peers) afterwards."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
