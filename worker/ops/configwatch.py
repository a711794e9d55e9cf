"""Config reload in every process (worker, beat, web), and which config version each one runs.

Each long-running process follows its config file (:class:`config.watch.ConfigFile`): an edit takes
effect without a restart, an invalid edit leaves the last good config running and is reported.

* **Worker**: the main process checks on Celery's ``heartbeat_sent`` (every 2 s) and reports; each
  pool child checks before every task (one ``stat``), so no task runs on a config older than the
  file it could read.
* **Beat**: checks on every scheduler tick (at most every 5 s); a change syncs the sources into the
  database, replaces the schedule and crawls new sources at once (:mod:`worker.ops.beatreload`).
* **Web**: a daemon thread checks every :data:`CHECK_INTERVAL` seconds.
* **SIGHUP** makes a process re-read at its next check; **``syndicate reload``** does the same for
  every process of the deployment through the Redis counter :data:`RELOAD_KEY`, then waits for
  their reports.

Every check writes the process's report into the Redis hash :data:`VERSIONS_KEY` (name -> JSON:
role, version, error, the version of the invalid file, Redis time), which ``syndicate status``,
``GET /api/status`` and the status page read with :func:`config_status`. A process that stops on
purpose removes its entry.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import signals

from config.watch import ConfigFile
from worker import redisclient

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

VERSIONS_KEY = "syndicate:config:versions"
RELOAD_KEY = "syndicate:config:reload"
CHECK_INTERVAL = 2.0
#: A report older than this belongs to a process that stopped without saying so.
STALE_AFTER = 30.0
FORGET_AFTER = 3600.0


class ConfigWatch:
    """One process's config file, the runtime it feeds, and its report in Redis."""

    def __init__(self, runtime: Runtime, path: Path, role: str, name: str, *, redis_url: str | None) -> None:
        self.runtime = runtime
        self.role = role
        self.name = name
        self.file = ConfigFile(path)
        # The runtime was built from the same file a moment ago; start from what it holds.
        self.file.config = runtime.config
        # Built now (no connection is opened until the first report); 1 s timeouts like the
        # other bookkeeping writes (see redisclient.bookkeeping), to this runtime's Redis.
        self._client: Any = None
        if redis_url:
            self._client = redisclient.connect(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._reloads: bytes | None = None
        self._forced = False
        self._last_check = 0.0
        self._lock = threading.Lock()
        # A pool child forked while another thread held the lock would wait on it forever.
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    # -- checking ----------------------------------------------------------------------------------------

    def request(self, *_: Any) -> None:
        """Re-read at the next check (a SIGHUP handler: sets a flag, nothing else)."""
        self._forced = True

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed; swap the runtime's config when it is valid. Never raises."""
        with self._lock:
            force, self._forced = force or self._forced, False
            before = self.file.error
            try:
                changed = self.file.refresh(force=force)
            except Exception:  # a reload must never take the process down
                log.exception("could not re-read the config %s", self.file.path)
                return False
            if changed:
                self.runtime.replace_config(self.file.config)
                log.warning("config %s reloaded: now running version %s", self.file.path, self.file.version)
            elif self.file.error and self.file.error != before:
                log.error(
                    "config %s is invalid; still running version %s: %s",
                    self.file.path,
                    self.file.version,
                    self.file.error,
                )
            return changed

    def check(self) -> bool:
        """At most every :data:`CHECK_INTERVAL` s: honour ``syndicate reload``, refresh, report."""
        now = time.monotonic()
        if now - self._last_check < CHECK_INTERVAL and not self._forced:
            return False
        self._last_check = now
        counter = self.report()
        if counter is not None and self._reloads is not None and counter != self._reloads:
            self._forced = True
        if counter is not None:
            self._reloads = counter
        changed = self.refresh()
        if changed or self.file.error:
            self.report()
        return changed

    # -- reporting ---------------------------------------------------------------------------------------

    def entry(self) -> dict[str, Any]:
        """What this process reports: its role, config version and the newer file's error."""
        return {
            "role": self.role,
            "path": str(self.file.path),
            "version": self.file.version,
            "error": self.file.error,
            "error_version": self.file.error_version,
        }

    def report(self) -> bytes | None:
        """Write this process's entry; return the reload counter (None: unknown). Never raises."""
        client = self._client
        if client is None:
            return None
        try:
            entry = json.dumps(self.entry())
            counter = client.eval(redisclient.CONFIG_REPORT, 2, VERSIONS_KEY, RELOAD_KEY, self.name, entry)
        except Exception as exc:
            log.warning("could not report the config version to Redis: %s", exc)
            return None
        if counter is None:  # nobody ran `syndicate reload` yet
            return b"0"
        return counter if isinstance(counter, bytes) else str(counter).encode()

    def forget(self) -> None:
        """This process stops on purpose: its entry goes (never raises)."""
        client = self._client
        if client is None:
            return
        try:
            client.hdel(VERSIONS_KEY, self.name)
        except Exception as exc:
            log.warning("could not remove the config version report: %s", exc)


_watch: ConfigWatch | None = None


def start(runtime: Runtime, path: Path, role: str, name: str) -> ConfigWatch:
    """Follow ``path`` in this process (one watch per process); SIGHUP asks for a re-read."""
    global _watch
    _watch = ConfigWatch(runtime, path, role, name, redis_url=runtime.settings.effective_redis_url)
    install_sighup()
    return _watch


def current() -> ConfigWatch | None:
    """This process's watch, if it follows its config file."""
    return _watch


def install_sighup() -> None:
    """SIGHUP: re-read the config at the next check (instead of stopping, or Celery's restart)."""
    if _watch is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, _watch.request)


# -- the worker: Celery signals ------------------------------------------------------------------------------


def watch_worker(runtime: Runtime, path: Path) -> None:
    """Follow the config in a worker: the main process on heartbeats, pool children before each task."""
    start(runtime, path, "worker", f"worker@{socket.gethostname()}")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="syndicate-config-ready")
    signals.heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid="syndicate-config-heartbeat")
    signals.task_prerun.connect(_before_task, weak=False, dispatch_uid="syndicate-config-prerun")
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="syndicate-config-down")


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    if _watch is None:
        return
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _watch.name = str(hostname)  # the node name, as in the heartbeats
    install_sighup()  # Celery's own SIGHUP handler would restart the whole worker
    _watch.report()


def _on_heartbeat(**_: Any) -> None:
    if _watch is not None:
        _watch.check()


def _before_task(**_: Any) -> None:
    if _watch is not None:
        _watch.refresh()


def _on_worker_shutdown(**_: Any) -> None:
    if _watch is not None:
        _watch.forget()


# -- the web process: a thread -------------------------------------------------------------------------------


def watch_web(runtime: Runtime, path: Path, name: str) -> None:
    """Follow the config in a web process: a daemon thread checks every :data:`CHECK_INTERVAL` s."""
    watch = start(runtime, path, "web", name)
    watch.report()

    def loop() -> None:
        while True:
            time.sleep(CHECK_INTERVAL)
            watch.check()

    threading.Thread(target=loop, name="config-watch", daemon=True).start()


# -- reading the reports -------------------------------------------------------------------------------------


def request_reload(client: Any) -> int:
    """Ask every process to re-read its config now (``syndicate reload``); the new counter."""
    return int(client.incr(RELOAD_KEY))


def reload_all(
    client: Any, version: str | None, *, timeout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ask every process to re-read its config; wait until each live one reports ``version``.

    A process has answered when it runs ``version`` or reports it as the invalid file it would not
    take. Returns the live processes' reports and those still waiting at ``timeout``.
    """
    request_reload(client)
    deadline = time.monotonic() + timeout
    while True:
        info = config_status(client) or {"processes": []}
        live = [p for p in info["processes"] if not p["stale"]]
        waiting = [p for p in live if version not in (p["version"], p["error_version"])]
        if not waiting or time.monotonic() > deadline:
            return live, waiting
        time.sleep(0.2)


def config_status(client: Any) -> dict[str, Any] | None:
    """Every process's config report with its age, newest config first; None without Redis.

    ``{"processes": [{"name", "role", "path", "version", "error", "error_version", "age_seconds",
    "stale"}], "error": "..." | None}``: ``error`` is a live process's (the file it cannot take).
    """
    if client is None:
        return None
    try:
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(VERSIONS_KEY)
        (seconds, micros), raw = pipe.execute()
    except Exception as exc:
        return {"processes": [], "error": None, "unknown": f"{type(exc).__name__}: {exc}"}
    now = seconds + micros / 1e6
    rows = []
    for name, value in raw.items():
        try:
            entry = json.loads(value)
        except ValueError:
            continue
        age = max(0.0, now - float(entry.get("at") or 0))
        if age > FORGET_AFTER:
            continue
        rows.append(
            {
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "role": str(entry.get("role") or "?"),
                "path": str(entry.get("path") or ""),
                "version": str(entry.get("version") or "?"),
                "error": entry.get("error"),
                "error_version": entry.get("error_version"),
                "age_seconds": round(age, 3),
                "stale": age > STALE_AFTER,
            }
        )
    rows.sort(key=lambda row: (row["role"], row["name"]))
    error = next((row["error"] for row in rows if row["error"] and not row["stale"]), None)
    return {"processes": rows, "error": error, "unknown": None}
