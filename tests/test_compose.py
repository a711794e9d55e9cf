"""docker-compose.yml runs the same `syndicate` commands as `syndicate up` (Docker itself cannot run here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_every_part_and_uses_real_cli_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "worker", "beat", "web", "flower"} <= set(services)
    parser = build_parser()
    for name in ("migrate", "worker", "beat", "web", "flower"):
        command = services[name]["command"]
        args = parser.parse_args(command)  # exits (fails the test) on an unknown subcommand or flag
        assert callable(args.func), name
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql")
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["syndicate"]' in dockerfile


def test_nginx_serves_the_exported_feeds_and_proxies_the_rest_to_web() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    nginx, web, worker = services["nginx"], services["web"], services["worker"]
    assert nginx["ports"] == ["127.0.0.1:8000:80"]
    assert "ports" not in web  # only nginx is published
    feed_dir = worker["environment"]["SYNDICATE_FEED_DIR"]
    assert web["environment"]["SYNDICATE_FEED_DIR"] == feed_dir
    assert f"syndicate-feeds:{feed_dir}" in worker["volumes"]
    mounts = {m.split(":")[1]: m for m in nginx["volumes"]}
    root = nginx["environment"]["SYNDICATE_FEED_ROOT"]
    assert mounts[f"{root}/feeds"] == f"syndicate-feeds:{root}/feeds:ro"
    template = mounts["/etc/nginx/templates/default.conf.template"].split(":")[0]
    text = (ROOT / template).read_text(encoding="utf-8")
    host, port = nginx["environment"]["SYNDICATE_WEB_UPSTREAM"].split(":")
    assert host == "web" and port == "8000"
    for needed in ("gzip_static on", "etag on", "try_files $uri @app", 'rel=\\"hub\\"', 'rel=\\"self\\"'):
        assert needed in text, needed
    for variable in (
        "SYNDICATE_FEED_ROOT",
        "SYNDICATE_WEB_UPSTREAM",
        "SYNDICATE_PUBLIC_URL",
        "SYNDICATE_WEBSUB_HUB",
    ):
        assert "${" + variable + "}" in text and variable in nginx["environment"], variable
    assert "/app/feeds" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_every_service_has_a_healthcheck_that_is_a_real_command() -> None:
    """Healthchecks run `syndicate health <part>` (a real subcommand) where the service is ours."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    parser = build_parser()
    for name, service in services.items():
        if name == "migrate":  # a one-shot job: its exit status is its health
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        if test[1] == "syndicate":
            args = parser.parse_args(test[2:])
            assert args.func.__name__ == "cmd_health", name
            assert args.part == {"worker": "worker", "beat": "beat", "web": "web"}[name]
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
