"""The exit codes the README promises, for the commands as typed (real processes, real Redis or none)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from tests.support.services import RedisServer, Syndicate

CONFIG = """
sources:
  - {name: news, kind: listing, url: "https://partner.example/news/", schedule: 1m}
feeds:
  - {name: all, title: All}
endpoints:
  - {name: log, kind: file, path: shares.jsonl}
"""


def _user(tmp_path: Path, redis_url: str) -> Syndicate:
    (tmp_path / "syndicate.yaml").write_text(CONFIG, encoding="utf-8")
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
        },
    )


def test_share_list_and_preview_of_an_unknown_endpoint_exit_2(tmp_path: Path) -> None:
    syn = _user(tmp_path, "redis://127.0.0.1:1/0")
    listed = syn.run("share", "list", "--endpoint", "nope")
    assert listed.returncode == 2, listed.stdout + listed.stderr
    assert "no endpoint named 'nope' (endpoints: log)" in listed.stderr
    assert "no shares" not in listed.stdout
    as_json = syn.run("share", "list", "--endpoint", "nope", "--json")
    assert as_json.returncode == 2
    previewed = syn.run("share", "preview", "1", "--endpoint", "nope")
    assert previewed.returncode == 2 and "no endpoint named 'nope'" in previewed.stderr
    # A configured endpoint without shares is no error.
    known = syn.run("share", "list", "--endpoint", "log")
    assert known.returncode == 0 and "no shares" in known.stdout


def test_status_with_redis_down_exits_4_and_promises_no_crawl(tmp_path: Path) -> None:
    syn = _user(tmp_path, "redis://127.0.0.1:1/0")
    status = syn.run("status")
    assert status.returncode == 4, status.stdout + status.stderr
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in status.stderr
    news = next(line for line in status.stdout.splitlines() if line.strip().startswith("news"))
    assert "next unknown (Redis unreachable)" in news
    assert "next in" not in news and "next just now" not in news
    as_json = syn.run("status", "--json")
    assert as_json.returncode == 4 and as_json.stdout.lstrip().startswith("{")


def test_status_with_redis_up_exits_0(tmp_path: Path, redis_server: RedisServer) -> None:
    syn = _user(tmp_path, redis_server.url)
    status = syn.run("status")
    assert status.returncode == 0, status.stderr
    assert "next just now" in status.stdout and "unreachable" not in status.stdout + status.stderr


def test_version_as_typed() -> None:
    script = Path(sys.executable).with_name("syndicate")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"syndicate {importlib.metadata.version('syndicate')}"
