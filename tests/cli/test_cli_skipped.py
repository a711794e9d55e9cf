"""A new source's first crawl is the back catalogue, and the commands say so: ``syndicate crawl --inline``
on a real site (the saved e2e site on 127.0.0.1) logs it, and ``syndicate status`` counts the skipped
shares per endpoint with their reason and the source's first-crawl stories, instead of ``sent 0,
pending 0`` and nothing else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker.cli import main
from worker.runtime import set_runtime
from worker.store.db import get_engine

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"
STORIES = 3


def test_the_first_crawl_is_counted_as_skipped_back_catalogue(
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    with HTTPTestServer(root=SITE) as site:
        config = tmp_path / "syndicate.yaml"
        config.write_text(
            f"""
fetch: {{allow_hosts: ["127.0.0.1"], timeout: 10s}}
sources:
  - {{name: cluster, kind: listing, url: "{site.url("/")}", options: {{link_selector: "a.post-link"}}}}
feeds: [{{name: all, title: All}}]
endpoints:
  - {{name: masto-log, kind: file, path: shares.jsonl, story_window: 0}}
  - {{name: archive, kind: file, path: archive.jsonl, back_catalogue: true, story_window: 0}}
""",
            encoding="utf-8",
        )
        monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SYNDICATE_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{redis_server.port}/8")
        monkeypatch.chdir(tmp_path)
        try:
            assert main(["migrate"]) == 0
            with caplog.at_level(logging.INFO, logger="worker.crawl"):
                assert main(["crawl", "cluster", "--inline"]) == 0
            assert f"{STORIES} shares sent" in capsys.readouterr().out  # the archive took them all
            said = [r.getMessage() for r in caplog.records if "first crawl" in r.getMessage()]
            assert said and f"found {STORIES} new stories" in said[0] and "masto-log" in said[0], said
            assert "archive" not in said[0]  # it shares the back catalogue

            assert main(["status"]) == 0
            text = capsys.readouterr().out
            line = next(x for x in text.splitlines() if x.strip().startswith("masto-log"))
            assert "sent 0, pending 0" in line
            assert f"skipped {STORIES} (back catalogue: found by its source's first crawl {STORIES})" in line
            assert f"{STORIES} from its first crawl (back catalogue)" in text

            assert main(["status", "--json"]) == 0
            snap = json.loads(capsys.readouterr().out)
            endpoints = {e["name"]: e for e in snap["endpoints"]}
            assert endpoints["masto-log"]["skipped_reasons"] == {"first_crawl": STORIES}
            assert (endpoints["archive"]["skipped"], endpoints["archive"]["sent"]) == (0, STORIES)
            cluster = next(s for s in snap["sources"] if s["name"] == "cluster")
            assert cluster["first_crawl"] == STORIES
        finally:
            set_runtime(None)
            get_engine(database_url).dispose()
