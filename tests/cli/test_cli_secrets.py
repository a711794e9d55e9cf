"""Reading and checking a config needs no secrets; only sending does.

``check-config --no-secrets`` and the read-only commands (``status``, ``share list``) warn about each
unset ``${ENV_VAR}`` with its key path and go on, and ``status`` shows the endpoint that lacks its
credentials as not configured; ``check-config`` without the flag and the worker refuse, naming the
variable. Real processes, a real Redis, a throwaway SQLite database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer, Syndicate

SITE = Path(__file__).resolve().parents[1] / "fixtures" / "e2e-site"

CONFIG = """
sources:
  - {name: partner, kind: listing, url: "https://partner.example/news/"}
feeds:
  - {name: all, title: All}
endpoints:
  - {name: archive, kind: file, path: shares.jsonl}
  - name: masto
    kind: mastodon
    instance: https://mastodon.social
    access_token: ${MASTODON_TOKEN}
  - {name: discord, kind: discord, webhook_url: "${DISCORD_WEBHOOK_URL}"}
"""


@pytest.fixture
def syn(tmp_path: Path, redis_server: RedisServer) -> Syndicate:
    (tmp_path / "syndicate.yaml").write_text(CONFIG, encoding="utf-8")
    return Syndicate.make(
        tmp_path,
        {
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'syndicate.db'}",
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_server.url,
        },
    )


def test_check_config_without_secrets_warns_with_key_paths(syn: Syndicate) -> None:
    strict = syn.run("check-config")
    assert strict.returncode == 3, strict.stderr
    assert "endpoints[1].access_token: environment variable MASTODON_TOKEN is not set" in strict.stderr

    relaxed = syn.run("check-config", "--no-secrets")
    assert relaxed.returncode == 0, relaxed.stderr
    assert "ok (1 sources, 1 feeds, 3 endpoints; 2 secret(s) not set)" in relaxed.stdout
    warnings = [line for line in relaxed.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: endpoints[1].access_token: environment variable MASTODON_TOKEN is not set "
        "(the worker needs it to send)",
        "warning: endpoints[2].webhook_url: environment variable DISCORD_WEBHOOK_URL is not set "
        "(the worker needs it to send)",
    ]


def test_no_secrets_still_reports_every_other_problem(syn: Syndicate) -> None:
    (syn.cwd / "bad.yaml").write_text(
        CONFIG.replace("kind: mastodon", "kind: mastodon\n    visibility: everyone"), encoding="utf-8"
    )
    result = syn.run("check-config", "--no-secrets", "bad.yaml")
    assert result.returncode == 3
    assert "endpoints[1].visibility:" in result.stderr
    assert "MASTODON_TOKEN" not in result.stderr  # a missing secret is not one of the problems


def test_set_secrets_are_validated_as_before(syn: Syndicate) -> None:
    syn.env["MASTODON_TOKEN"] = "token"
    syn.env["DISCORD_WEBHOOK_URL"] = "not a url"
    result = syn.run("check-config", "--no-secrets")
    assert result.returncode == 3
    assert "endpoints[2]: webhook_url must be an http(s) URL" in result.stderr


def test_read_only_commands_run_without_secrets(syn: Syndicate) -> None:
    status = syn.run("status")
    assert status.returncode == 0, status.stderr
    warning = "warning: endpoints[1].access_token: environment variable MASTODON_TOKEN is not set"
    assert warning in status.stderr
    masto = next(line for line in status.stdout.splitlines() if line.strip().startswith("masto "))
    assert "NOT CONFIGURED: MASTODON_TOKEN not set" in masto
    archive = next(line for line in status.stdout.splitlines() if line.strip().startswith("archive "))
    assert "NOT CONFIGURED" not in archive

    as_json = syn.run("status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    endpoints = {e["name"]: e for e in json.loads(as_json.stdout)["endpoints"]}
    assert endpoints["discord"]["missing_secrets"] == ["DISCORD_WEBHOOK_URL"]
    assert endpoints["archive"]["missing_secrets"] == []

    shares = syn.run("share", "list", "--endpoint", "archive")
    assert shares.returncode == 0, shares.stderr
    assert "Traceback" not in shares.stderr


def test_the_worker_refuses_to_start_without_its_secrets(syn: Syndicate) -> None:
    result = syn.run("worker", timeout=60)
    assert result.returncode == 3
    assert "endpoints[1].access_token: environment variable MASTODON_TOKEN is not set" in result.stderr


def test_share_preview_without_secrets_says_not_configured(syn: Syndicate) -> None:
    with HTTPTestServer(root=SITE) as server:
        url = f"{server.base_url}/"
        listing = f'{{name: partner, kind: listing, url: "{url}", options: {{link_selector: a.post-link}}}}'
        config = CONFIG.replace(
            '{name: partner, kind: listing, url: "https://partner.example/news/"}', listing
        )
        config = 'fetch: {allow_hosts: ["127.0.0.1"]}\n' + config
        (syn.cwd / "syndicate.yaml").write_text(config, encoding="utf-8")
        with_secrets = dict(
            syn.env, MASTODON_TOKEN="t", DISCORD_WEBHOOK_URL="https://discord.example/api/webhooks/1/x"
        )
        crawl = Syndicate(env=with_secrets, cwd=syn.cwd).run("crawl", "partner", "--inline")
        assert crawl.returncode == 0, crawl.stderr
    preview = syn.run("share", "preview", "1", "--endpoint", "discord", "--json")
    assert preview.returncode == 0, preview.stderr
    [entry] = json.loads(preview.stdout)
    assert entry["note"].startswith("not configured: DISCORD_WEBHOOK_URL not set")
    assert entry["text"]  # it still renders what would be sent
