"""worker.redisclient: commands retry a lost connection a bounded number of times, on real sockets."""

from __future__ import annotations

import ast
import socket
import threading
from pathlib import Path

import pytest
import redis

from tests.support.services import RedisServer
from worker import redisclient
from worker.redisclient import RETRIES, connect

WORKER = Path(redisclient.__file__).resolve().parent


def test_a_command_tries_the_server_once_plus_the_bounded_retries() -> None:
    accepted = 0
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        # Accept and close at once, as a Redis going down does: redis-py sees a closed connection.
        nonlocal accepted
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted += 1
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(redis.ConnectionError):
            connect(f"redis://127.0.0.1:{port}/0").ping()
    finally:
        listener.close()
        thread.join(10)
    assert accepted == 1 + RETRIES  # redis-py's default would have made 11 attempts


def test_a_restarted_redis_on_the_same_port_is_used_again_without_an_error() -> None:
    server = RedisServer().start()
    try:
        client = connect(server.url)
        client.set("kept", "before")
        server.stop()
        with pytest.raises(redis.ConnectionError):
            client.get("kept")  # down: a quick, clear error rather than a hang
        server.start()
        client.set("kept", "after")  # the pool's dead connection is replaced on the retry
        assert client.get("kept") == b"after"
    finally:
        server.stop()


def test_every_lua_script_lives_in_redisclient() -> None:
    """A Lua script (a string that calls ``redis.call``) is defined in worker/redisclient.py only."""
    elsewhere = []
    for path in sorted(WORKER.rglob("*.py")):
        if path.name == "redisclient.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call(" in node.value:
                elsewhere.append(f"{path.relative_to(WORKER)}:{node.lineno}")
    assert elsewhere == []
    scripts = [
        name for name, value in vars(redisclient).items() if isinstance(value, str) and "redis.call(" in value
    ]
    assert len(scripts) == len(set(map(vars(redisclient).get, scripts)))  # no script twice
