"""Port clashes as a user meets them: `syndicate up` (and `web`, `monitor`) with a port another program holds.

Real `syndicate up` process trees on the demo config; the "other program" is a listening socket of the test.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support.services import Syndicate, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def held() -> Iterator[int]:
    """A port on 127.0.0.1 that another program listens on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _demo(tmp_path: Path, **ports: int) -> Syndicate:
    """The README's demo config in a scratch directory, on free ports unless ``ports`` says otherwise."""
    env = {
        "SYNDICATE_CONFIG": str(ROOT / "config" / "syndicate.yaml"),
        "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
        "SYNDICATE_HTTP_PORT": str(ports.get("http", free_port())),
        "SYNDICATE_FLOWER_PORT": str(ports.get("flower", free_port())),
        "SYNDICATE_REDIS_PORT": str(free_port()),
    }
    return Syndicate.make(tmp_path, env)


def _logged(syn: Syndicate, text: str) -> Callable[[], bool]:
    """Whether ``up``'s output so far holds ``text``."""
    return lambda: text in (syn.cwd / "up.log").read_text(errors="replace")


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float, syn: Syndicate) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s\n{syn.logs()}")


def test_up_with_the_web_port_taken_says_which_setting_to_change(tmp_path: Path, held: int) -> None:
    syn = _demo(tmp_path, http=held)
    result = syn.run("up", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: port {held} on 127.0.0.1 is already in use by another program, so the web app cannot "
        "listen there: stop that program or set SYNDICATE_HTTP_PORT to a free port"
    ], result.stderr
    assert "exited with code" not in result.stdout + result.stderr
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


def test_web_and_monitor_alone_with_their_port_taken(tmp_path: Path, held: int) -> None:
    web = _demo(tmp_path, http=held).run("web")
    assert web.returncode == 1 and "set SYNDICATE_HTTP_PORT" in web.stderr, web.stderr
    assert "Traceback" not in web.stderr
    monitor = _demo(tmp_path, flower=held).run("monitor")
    assert monitor.returncode == 1 and "set SYNDICATE_FLOWER_PORT" in monitor.stderr, monitor.stderr
    assert "Traceback" not in monitor.stderr


def test_up_with_the_flower_port_taken_runs_without_flower(tmp_path: Path, held: int) -> None:
    syn = _demo(tmp_path, flower=held)
    http_port = int(syn.env["SYNDICATE_HTTP_PORT"])
    proc = syn.start("up", "up")
    log = tmp_path / "up.log"
    try:
        _wait_for(_logged(syn, "Syndicate is running"), "the summary", 120, syn)
        output = log.read_text(errors="replace")
        warning = [line for line in output.splitlines() if "SYNDICATE_FLOWER_PORT" in line]
        assert len(warning) == 1 and "Flower" in warning[0] and "not started" in warning[0], output
        assert "Flower        http" not in output  # the summary does not offer a Flower that is not there
        assert "Traceback" not in output
        assert requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5).status_code == 200
        assert proc.poll() is None, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(60)
    assert code in (0, 130), syn.logs()
    assert "stopping everything" not in log.read_text(errors="replace")


def test_up_no_monitor_starts_no_flower(tmp_path: Path) -> None:
    syn = _demo(tmp_path)
    flower_port = int(syn.env["SYNDICATE_FLOWER_PORT"])
    proc = syn.start("up", "up", "--no-monitor")
    log = tmp_path / "up.log"
    try:
        _wait_for(_logged(syn, "Syndicate is running"), "the summary", 120, syn)
        assert "Flower        http" not in log.read_text(errors="replace")
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", flower_port)) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)


def test_up_runs_on_when_flower_stops(tmp_path: Path) -> None:
    # Flower refuses to listen on every address without a password: it exits, the rest must not.
    syn = _demo(tmp_path)
    syn.env["SYNDICATE_FLOWER_HOST"] = "0.0.0.0"
    syn.env.pop("FLOWER_BASIC_AUTH", None)
    http_port = int(syn.env["SYNDICATE_HTTP_PORT"])
    proc = syn.start("up", "up")
    log = tmp_path / "up.log"
    try:
        _wait_for(_logged(syn, "Flower exited with code"), "Flower's exit", 120, syn)
        _wait_for(_logged(syn, "Syndicate is running"), "the summary", 120, syn)
        assert requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5).status_code == 200
        assert proc.poll() is None, syn.logs()
        assert "stopping everything" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
