"""Fault injection on the real servers of :mod:`tests.support.services`: crash and restart them in place.

Each helper keeps the server's port (and, for PostgreSQL, its data), so the processes using it
reconnect to the same address once it is back, as they would after a real crash and restart.
"""

from __future__ import annotations

import signal
import time

from tests.support.services import PostgresServer, RedisServer, _pg_bin, wait_port


def kill_redis(server: RedisServer) -> None:
    """SIGKILL the Redis server (no save, no goodbye to its clients)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


def restart_redis(server: RedisServer) -> None:
    """Start Redis again on the same port, empty (the test servers never persist)."""
    server.start()


def crash_postgres(server: PostgresServer) -> None:
    """Stop PostgreSQL like a crash: ``pg_ctl stop -m immediate`` (clients lose their connections)."""
    res = server._run([_pg_bin("pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "stop"])
    if res.returncode:
        raise RuntimeError(f"pg_ctl stop failed: {res.stderr.strip()}")


def start_postgres(server: PostgresServer) -> None:
    """Start the same cluster again (same port, socket directory and data) and wait until it accepts."""
    opts = f"-p {server.port} -k {server.tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    res = server._run(
        [_pg_bin("pg_ctl"), "-D", str(server.data), "-o", opts, "-l", str(server.tmp / "log"), "-w", "start"]
    )
    if res.returncode:
        raise RuntimeError(f"pg_ctl start failed: {res.stderr.strip()}")
    wait_port(server.port, 30)


def restart_postgres(server: PostgresServer, down_for: float) -> None:
    """Crash PostgreSQL, keep it down for ``down_for`` seconds, start it again."""
    crash_postgres(server)
    time.sleep(down_for)
    start_postgres(server)
