"""What `syndicate up` shows on its terminal: the summary, then one line per event; the full logs in var/log/.

A real `up` process tree on the README's demo config, in a scratch directory, on free ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Syndicate, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO_ARTICLES = 3
DEMO_STORIES = 1  # the three write-ups report one partnership: one story, one entry, one post
# What used to bury the summary: Celery's banner and task list, per-task lines, Flower's inspector.
NOISE = ("-------------- celery@", "[tasks]", "succeeded in", "flower.inspector", '"level": "INFO"')


@pytest.fixture
def syn(tmp_path: Path) -> Iterator[Syndicate]:
    running = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(ROOT / "config" / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_HTTP_PORT": str(free_port()),
            "SYNDICATE_FLOWER_PORT": str(free_port()),
            "SYNDICATE_REDIS_PORT": str(free_port()),
        },
    )
    yield running
    running.stop()


def _terminal(syn: Syndicate) -> str:
    return (syn.cwd / "up.log").read_text(encoding="utf-8", errors="replace")


def _events(text: str, event: str) -> list[str]:
    return [line for line in text.splitlines() if line[8:].lstrip().startswith(event + " ")]


def _wait_until(syn: Syndicate, done: object, what: str, timeout: float = 150) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _terminal(syn)
        if callable(done) and done(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout}s:\n{_terminal(syn)[-4000:]}")


def _ctrl_c(proc: subprocess.Popen[bytes]) -> int:
    os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(60)


def test_up_shows_the_summary_then_one_line_per_event(syn: Syndicate, tmp_path: Path) -> None:
    proc = syn.start("up", "up")
    try:
        text = _wait_until(
            syn,
            lambda t: (
                len(_events(t, "posted")) >= DEMO_STORIES and len(_events(t, "gathered")) >= DEMO_ARTICLES
            ),
            "a post line per demo story",
        )
    finally:
        code = _ctrl_c(proc)
    assert code in (0, 130), _terminal(syn)[-3000:]
    http_port = syn.env["SYNDICATE_HTTP_PORT"]
    summary, _, events = text.partition("Press Ctrl-C to stop.")
    assert "Syndicate is running:" in summary and f"http://127.0.0.1:{http_port}/feeds/all.rss" in summary
    assert f"config        {ROOT / 'config' / 'syndicate.yaml'}" in summary
    assert f"logs          {tmp_path / 'var' / 'log'}/" in summary
    gathered = _events(events, "gathered")
    assert len(gathered) == DEMO_ARTICLES, events
    assert all(f"http://127.0.0.1:{http_port}/demo/" in line for line in gathered), gathered
    posted = _events(events, "posted")
    assert len(posted) == DEMO_STORIES and all("demo-file:" in line for line in posted), posted
    assert any("all updated: 1 item " in line for line in _events(events, "feed")), events
    for noise in NOISE:
        assert noise not in text, noise
    # The full logs are in the files.
    logs = tmp_path / "var" / "log"
    worker = (logs / "worker.log").read_text(encoding="utf-8")
    assert "celery@" in worker and worker.count("succeeded in") >= DEMO_ARTICLES
    assert '"component": "beat"' in (logs / "beat.log").read_text(encoding="utf-8")
    assert "Uvicorn running" in (logs / "web.log").read_text(encoding="utf-8")
    assert (logs / "flower.log").stat().st_size > 0


def test_up_verbose_shows_the_full_logs_too(syn: Syndicate, tmp_path: Path) -> None:
    proc = syn.start("up", "up", "--verbose", "--no-monitor")
    try:
        text = _wait_until(syn, lambda t: "succeeded in" in t and "posted" in t, "task log on the terminal")
    finally:
        _ctrl_c(proc)
    assert "celery@" in text and "Syndicate is running:" in text
    assert "succeeded in" in (tmp_path / "var" / "log" / "worker.log").read_text(encoding="utf-8")
