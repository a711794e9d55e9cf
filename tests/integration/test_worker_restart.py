"""A running worker that Celery ends on an "Unrecoverable error" (kombu's Redis transport raises one on
some broker reconnects: seen in the fault suite as an AttributeError while a restarted Redis came back)
starts again by itself and goes on working; one stopped on purpose does not.

Real Redis, a real worker process (``tests/support/crashing_worker.py``: the real CLI with a consumer
loop that raises once, 2 s after it started), a real ``syndicate.noop`` round trip through Celery.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.services import RedisServer, Syndicate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
sources:
  - name: nothing
    kind: page
    url: http://127.0.0.1:9/never.html
    schedule: 1d
feeds:
  - name: all
    title: All
"""


def _wait(what: str, check: Any, timeout: float, logs: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def test_a_worker_ended_by_an_unrecoverable_error_starts_again(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(url).flushdb()
    (tmp_path / "syndicate.yaml").write_text(CONFIG, encoding="utf-8")
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "REDIS_URL": url,
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
        },
    )
    assert syn.run("migrate").returncode == 0
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/support/crashing_worker.py"),
                "worker",
                "--hostname",
                "w1@test",
            ],
            env=syn.env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    syn.procs.append(("worker", proc))
    text = lambda: log_path.read_text(errors="replace", encoding="utf-8")  # noqa: E731
    try:
        _wait("the injected unrecoverable error", lambda: "Unrecoverable error" in text(), 60, text)
        _wait("the worker to start again and be ready", lambda: text().count("w1@test ready.") >= 2, 60, text)
        assert "starting again in 1 s (restart 1 of this process)" in text()
        assert proc.poll() is None  # the same process (exec), still running

        # A client app of its own: the process-wide one may hold pools for another test's Redis.
        from celery import Celery

        probe = Celery("restart-probe", broker=url)
        try:
            answers = probe.control.ping(destination=["w1@test"], timeout=5.0)
            assert answers and "w1@test" in answers[0], answers
            result = probe.send_task("syndicate.noop", args=[7], queue="fetch")
        finally:
            probe.close()
        # The restarted worker runs tasks: the noop is received and succeeds.
        _wait(
            "the noop to run on the restarted worker",
            lambda: f"Task syndicate.noop[{result.id}] succeeded" in text(),
            30,
            text,
        )

        # Stopped on purpose, it stays stopped.
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert text().count("w1@test ready.") == 2
    finally:
        syn.stop()
