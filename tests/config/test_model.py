"""Config validation: every mistake is reported with its key path, by the loader and by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.model import ConfigError, load_config, parse_duration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"
BAD = sorted(FIXTURES.glob("bad-*.yaml"))


def expectations(path: Path) -> list[str]:
    """The ``# expect:`` lines at the top of a fixture."""
    return [
        line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines() if "# expect:" in line
    ]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_lists_every_problem(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    joined = "\n".join(info.value.problems)
    for expected in expectations(path):
        assert expected in joined, f"{expected!r} not in:\n{joined}"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_check_config_cli_exits_non_zero_without_traceback(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for expected in expectations(path):
        assert expected in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_good_config_loads_with_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNDICATE_TEST_TOKEN", raising=False)
    monkeypatch.setenv("SYNDICATE_TEST_SECRET", "whsec_c2VjcmV0")
    config = load_config(FIXTURES / "good-full.yaml")
    assert config.api.token is not None and config.api.token.get_secret_value() == "fallback-token"
    assert config.endpoint("hook").secret is not None
    assert config.endpoint("hook").secret.get_secret_value() == "whsec_c2VjcmV0"
    assert "whsec_c2VjcmV0" not in repr(config)
    assert [s.schedule for s in config.sources] == [600.0, 3600.0, 300.0, 900.0]
    assert config.source("cluj").options["max_articles"] == 20
    assert config.feed("it").categories == ["IT Systems"]


def test_shipped_example_config_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "syndicate.yaml")
    assert config.sources and config.feeds and config.endpoints


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30.0), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0), ("1d", 86400.0)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["0s", -1, "soon", True, None, "5 parsecs"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
