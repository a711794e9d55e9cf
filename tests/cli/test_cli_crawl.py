"""`syndicate crawl` and `status` as an operator runs them: a failed inline crawl exits non-zero,
Redis or the database being down is one line (no traceback), and status shows a failing source."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer, Response
from tests.support.services import Syndicate, free_port


@pytest.fixture
def site() -> Iterator[HTTPTestServer]:
    """A site whose listing serves a PDF."""
    with HTTPTestServer(root=None) as server:
        server.route("/news/", Response(200, b"%PDF-1.7 not a page", {"Content-Type": "application/pdf"}))
        yield server


def make(tmp_path: Path, site: HTTPTestServer, database_url: str, redis_url: str) -> Syndicate:
    (tmp_path / "syndicate.yaml").write_text(
        f"""
fetch: {{allow_hosts: ["{site.host_port}"]}}
sources:
  - {{name: pdf, kind: listing, url: "{site.url("/news/")}"}}
""",
        encoding="utf-8",
    )
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": database_url,
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
        },
    )


def test_failed_inline_crawl_exits_non_zero_and_status_says_why(
    tmp_path: Path, site: HTTPTestServer, database_url: str
) -> None:
    syn = make(tmp_path, site, database_url, f"redis://127.0.0.1:{free_port()}/0")
    crawl = syn.run("crawl", "pdf", "--inline")
    assert crawl.returncode == 1
    assert "crawl of pdf failed" in crawl.stderr and "application/pdf" in crawl.stderr
    assert "Traceback" not in crawl.stderr
    status = json.loads(syn.run("status", "--json").stdout)
    pdf = next(s for s in status["sources"] if s["name"] == "pdf")
    assert (
        pdf["state"] == "backing off" and pdf["failing_since"] and "UnsupportedContent" in pdf["last_error"]
    )
    human = syn.run("status").stdout
    assert "BACKING OFF since" in human and "application/pdf" in human


def test_crawl_with_redis_down_is_one_line(tmp_path: Path, site: HTTPTestServer, database_url: str) -> None:
    syn = make(tmp_path, site, database_url, f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    result = syn.run("crawl", "pdf")
    assert result.returncode == 4  # unreachable (worker.cli.EXIT_UNREACHABLE)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Redis" in lines[0] and "unreachable" in lines[0], result.stderr
    assert "hunter2" not in result.stderr


def test_commands_with_the_database_down_are_one_line(tmp_path: Path, site: HTTPTestServer) -> None:
    database = f"postgresql+psycopg://syndicate:secret@127.0.0.1:{free_port()}/nothing"
    syn = make(tmp_path, site, database, f"redis://127.0.0.1:{free_port()}/0")
    for command in (["crawl", "pdf"], ["status"]):
        result = syn.run(*command)
        assert result.returncode == 4, result.stderr  # unreachable (worker.cli.EXIT_UNREACHABLE)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "database" in lines[0] and "unreachable" in lines[0], result.stderr
        assert "secret" not in result.stderr
