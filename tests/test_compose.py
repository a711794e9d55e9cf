"""docker-compose.yml runs the same `syndicate` commands as `syndicate up` (Docker itself cannot run here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_every_part_and_uses_real_cli_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["syndicate"]' in dockerfile
