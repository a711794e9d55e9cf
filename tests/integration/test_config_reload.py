"""Config edits take effect in running processes: real ``syndicate worker``, ``beat`` and ``web``.

Before, a source added to the running config showed in ``syndicate status`` as new and due, and
``syndicate crawl`` enqueued it, but the worker logged ``source ... is no longer configured`` and
never crawled it until every process was restarted. Here, with a worker, beat and web running on
one real Redis and one SQLite database:

* a source added to the file is crawled (its three articles end ``ready``) with no restart and no
  command, and every process reports the file's new version;
* an invalid file leaves every process on the last good version, and ``syndicate status``, ``GET
  /api/status`` and the status page show the error;
* ``syndicate reload`` makes every process take a fixed file and confirms each one; SIGHUP asks a
  process to re-read instead of stopping it.

Every wait is for a condition (the processes' reports in Redis, rows in the database), never a sleep.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.watch import file_version
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.ops.configwatch import config_status
from worker.store.db import get_engine
from worker.store.models import Article, Source

pytestmark = pytest.mark.integration

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
REDIS_DB = 13
WAIT = 60.0
BASE = """
fetch: {{allow_hosts: ["127.0.0.1"]}}
# The status page and /api/status are read below without a token.
api: {{public_status: true}}
sources:{sources}
feeds:
  - {{name: all, title: All}}
endpoints:
  - {{name: archive, kind: file, path: archive.jsonl, back_catalogue: true, story_window: 0}}
"""
ADDED = """
  - name: added-later
    kind: listing
    url: "{site}/"
    schedule: 1h
    options: {{link_selector: "a.post-link"}}
"""


def wait_for(what: str, check: Callable[[], Any], syn: Syndicate, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the processes' logs otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in syn.procs:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}\n{syn.logs()}")
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{syn.logs()}")


@pytest.fixture
def deployment(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Syndicate, str, redis.Redis]]:
    url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    with HTTPTestServer(root=SITE) as site:
        (tmp_path / "syndicate.yaml").write_text(BASE.format(sources=" []"), encoding="utf-8")
        port = free_port()
        syn = Syndicate.make(
            tmp_path,
            {
                "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
                "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
                "REDIS_URL": url,
                "SYNDICATE_HTTP_PORT": str(port),
                "SYNDICATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            },
        )
        assert syn.run("migrate").returncode == 0
        try:
            syn.start("worker", "worker", "--concurrency", "1", "--hostname", "reload@%h")
            syn.start("beat", "beat")
            web = syn.start("web", "web")
            wait_port(port, timeout=WAIT, proc=web)
            yield syn, site.base_url, client
        finally:
            syn.stop()
            client.close()


def reports(client: redis.Redis) -> dict[str, dict[str, Any]]:
    info = config_status(client) or {"processes": []}
    return {p["role"]: p for p in info["processes"] if not p["stale"]}


def all_report(client: redis.Redis, **expected: Any) -> bool:
    rows = reports(client)
    return set(rows) == {"worker", "beat", "web"} and all(
        all(row[key] == value for key, value in expected.items()) for row in rows.values()
    )


def ready_articles(tmp_path: Path, source: str) -> int:
    engine = get_engine(f"sqlite:///{tmp_path / 'syndicate.db'}")
    with Session(engine) as session:
        return len(
            session.scalars(
                select(Article.id).join(Source).where(Source.name == source, Article.status == "ready")
            ).all()
        )


def crawls(tmp_path: Path, source: str) -> int:
    engine = get_engine(f"sqlite:///{tmp_path / 'syndicate.db'}")
    with Session(engine) as session:
        return int(session.scalar(select(Source.crawl_count).where(Source.name == source)) or 0)


def test_config_edits_reach_running_processes(
    deployment: tuple[Syndicate, str, redis.Redis], tmp_path: Path
) -> None:
    syn, site, client = deployment
    config = tmp_path / "syndicate.yaml"
    first = file_version(config)
    wait_for("every process to report the first config", lambda: all_report(client, version=first), syn)

    # A source added while everything runs is crawled, with no restart and no command.
    config.write_text(BASE.format(sources=ADDED.format(site=site)), encoding="utf-8")
    second = file_version(config)
    assert second is not None and second != first
    wait_for("the added source's 3 articles", lambda: ready_articles(tmp_path, "added-later") == 3, syn)
    wait_for("every process on the new config", lambda: all_report(client, version=second, error=None), syn)
    status = syn.run("status")
    assert status.returncode == 0, status.stderr
    assert "added-later" in status.stdout
    for role in ("worker", "beat", "web"):
        assert any(line.split()[:1] == [role] and second in line for line in status.stdout.splitlines()), (
            status.stdout
        )
    crawl = syn.run("crawl", "added-later")
    assert crawl.returncode == 0, crawl.stderr
    wait_for("the manual crawl to run", lambda: crawls(tmp_path, "added-later") >= 2, syn)
    assert "no longer configured" not in syn.logs()

    # An invalid file: every process keeps the last good config and says why.
    config.write_text(config.read_text(encoding="utf-8") + "endpoints: [unclosed\n", encoding="utf-8")
    broken = file_version(config)
    assert broken is not None
    wait_for(
        "every process to report the invalid file",
        lambda: all_report(client, version=second, error_version=broken),
        syn,
    )
    status = syn.run("status")
    assert status.returncode == 3
    assert "invalid YAML" in status.stderr
    assert f"ERROR: version {broken} not taken, still running {second}" in status.stdout
    port = syn.env["SYNDICATE_HTTP_PORT"]
    api = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=10).json()
    assert "invalid YAML" in api["config"]["error"]
    assert "added-later" in {s["name"] for s in api["sources"]}  # the web still runs the last good one
    page = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text
    assert "id='config-error'" in page and "invalid YAML" in page

    # SIGHUP asks for a re-read; it no longer stops beat or web.
    for name, proc in syn.procs:
        if name in ("beat", "web"):
            os.kill(proc.pid, signal.SIGHUP)

    # A fixed file, then `syndicate reload`: it waits until every process confirms the version.
    config.write_text(
        BASE.format(sources=ADDED.format(site=site).replace("schedule: 1h", "schedule: 2h")), encoding="utf-8"
    )
    third = file_version(config)
    assert third is not None
    reload = syn.run("reload", "--timeout", "30")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert all_report(client, version=third, error=None), reports(client)
    for role in ("worker", "beat", "web"):
        assert any(
            line.split()[:1] == [role] and line.rstrip().endswith("ok") for line in reload.stdout.splitlines()
        )
    assert all(proc.poll() is None for _, proc in syn.procs), syn.logs()


def test_reload_of_an_invalid_file_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    (tmp_path / "syndicate.yaml").write_text("sources: [\n", encoding="utf-8")
    syn = Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "REDIS_URL": f"{redis_server.url[:-2]}/{REDIS_DB}",
        },
    )
    result = syn.run("reload", "--timeout", "1")
    assert result.returncode == 3
    assert "invalid YAML" in result.stderr and "keep their last good config" in result.stderr
