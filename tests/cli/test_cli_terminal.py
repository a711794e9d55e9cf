"""The CLI on a terminal and in pipes, as real processes: progress bars with counts on a pseudo-terminal
(``pty``), nothing drawn and parseable stdout off one, and a quiet exit when the reader of stdout goes away.

Storage is not what is tested here, so these run on SQLite only (the commands' storage is covered on
both backends by tests/cli/test_cli_commands.py and test_cli_ops.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.services import Syndicate

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
PAGES = sorted((SITE / "news").glob("*.html"))
NOISE = ("Traceback", "BrokenPipeError", "Exception ignored")


@pytest.fixture
def site() -> Iterator[str]:
    """The e2e fixture site (a listing and three stories) on 127.0.0.1."""
    with HTTPTestServer(root=SITE) as server:
        yield server.base_url


@pytest.fixture
def syn(tmp_path: Path, site: str) -> Syndicate:
    """One listing source, two feeds, a file endpoint; SQLite; no Redis needed."""
    (tmp_path / "syndicate.yaml").write_text(
        f"""
fetch: {{allow_hosts: ["127.0.0.1"]}}
sources:
  - {{name: cluster, kind: listing, url: "{site}/", options: {{link_selector: "a.post-link"}}}}
feeds:
  - {{name: all, title: All}}
  - {{name: it, title: IT, categories: [IT Systems]}}
endpoints:
  - {{name: archive, kind: file, path: archive.jsonl, back_catalogue: true, story_window: 0}}
""",
        encoding="utf-8",
    )
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "TERM": "xterm",
        },
    )


def saved_args(copies: int = 1) -> list[str]:
    """``--saved FILE URL`` for each story page, ``copies`` times over."""
    out: list[str] = []
    for i in range(copies):
        for page in PAGES:
            out += ["--saved", str(page), f"https://cluster.example/{i}/{page.name}"]
    return out


def run_on_pty(syn: Syndicate, *args: str, columns: int = 120) -> tuple[int, str, str]:
    """Run a subcommand with stderr on a pseudo-terminal and stdout on a pipe: (code, stdout, terminal)."""
    master, slave = pty.openpty()
    if columns:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args],
        env=syn.env,
        cwd=syn.cwd,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    code = proc.wait(timeout=120)
    reader.join(10)
    os.close(master)
    return code, out, seen.decode(errors="replace")


def test_progress_counts_on_a_terminal(syn: Syndicate) -> None:
    code, out, terminal = run_on_pty(syn, "crawl", "cluster", "--inline")
    assert code == 0, terminal
    assert re.search(r"articles:.*3/3", terminal), terminal
    assert re.search(r"feeds:.*2/2", terminal), terminal
    # log records are written above the bar, not into it
    assert "INFO" in terminal
    assert not [line for line in terminal.splitlines() if "INFO" in line and "%|" in line], terminal
    # stdout is a pipe: only the summary line, no bar
    assert out.strip().splitlines() == [out.strip()] and "3 articles processed" in out and "\r" not in out

    # a terminal that reports no width still gets a bar
    code, out, terminal = run_on_pty(syn, "feeds", "build", columns=0)
    assert code == 0 and re.search(r"feeds:.*2/2", terminal), terminal
    assert [line.split(":")[0] for line in out.splitlines()] == ["all", "it"]

    code, out, terminal = run_on_pty(syn, "scrape", *saved_args(2))
    assert code == 0 and re.search(rf"pages:.*{2 * len(PAGES)}/{2 * len(PAGES)}", terminal), terminal
    assert len([json.loads(line) for line in out.splitlines()]) == 2 * len(PAGES)

    # --no-progress, after the subcommand: nothing drawn even on a terminal
    code, out, terminal = run_on_pty(syn, "feeds", "build", "--no-progress")
    assert code == 0 and "2/2" not in terminal and "%|" not in terminal, terminal


def test_nothing_drawn_off_a_terminal_and_stdout_parseable(syn: Syndicate) -> None:
    crawl = syn.run("crawl", "cluster", "--inline")
    assert crawl.returncode == 0, crawl.stderr
    assert "\r" not in crawl.stderr and "3/3" not in crawl.stderr and "%|" not in crawl.stderr
    assert crawl.stdout.startswith("cluster: 3 articles processed")
    build = syn.run("feeds", "build")
    assert build.returncode == 0 and "\r" not in build.stderr + build.stdout
    assert all(re.match(r"^(all|it): (updated|unchanged)  http", line) for line in build.stdout.splitlines())
    scrape = syn.run("scrape", *saved_args())
    assert scrape.returncode == 0 and "\r" not in scrape.stderr
    assert {json.loads(line)["url"] for line in scrape.stdout.splitlines()} == {
        f"https://cluster.example/0/{p.name}" for p in PAGES
    }


def run_into_closed_pipe(
    syn: Syndicate, *args: str, buffered: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a subcommand whose stdout is a pipe nobody reads any more (its reader closed before it began).

    ``buffered``: without PYTHONUNBUFFERED, so the write that fails is the flush at the end.
    """
    env = {k: v for k, v in syn.env.items() if not (buffered and k == "PYTHONUNBUFFERED")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            env=env,
            cwd=syn.cwd,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "command", [["status"], ["status", "--json"], ["scrape"], ["share", "list", "--help"]], ids="-".join
)
def test_a_closed_pipe_ends_quietly(syn: Syndicate, command: list[str]) -> None:
    if command == ["scrape"]:
        command = ["scrape", *saved_args()]
    for buffered in (False, True):
        result = run_into_closed_pipe(syn, *command, buffered=buffered)
        assert not any(noise in result.stderr for noise in NOISE), (buffered, result.stderr)
        if "--help" in command and not buffered:
            # argparse itself swallows the failed unbuffered write of its help text, and exits 0
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 141, (buffered, result.stderr)


def test_piped_into_head(syn: Syndicate) -> None:
    assert syn.run("crawl", "cluster", "--inline").returncode == 0
    me = f"{sys.executable} -m worker.cli"
    pages = " ".join(saved_args(10))
    for pipeline in (f"{me} scrape {pages} | head -1", f"{me} status | head -1", f"{me} --help | head -1"):
        result = subprocess.run(
            ["bash", "-c", pipeline], env=syn.env, cwd=syn.cwd, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, (pipeline, result)
        assert not any(noise in result.stderr for noise in NOISE), (pipeline, result.stderr)
