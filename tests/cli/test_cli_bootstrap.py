"""``python3 bootstrap.py up`` installs the lint and type tools the README names, not only ``test``.

Creating a fresh venv here would download every dependency (minutes, network); this checks the
choice bootstrap makes and the extras it installs, and that the tools are where the README says.
It was also run once for real from a clean copy (`python3 bootstrap.py check-config`): .venv/bin/ruff
and .venv/bin/mypy were there afterwards, pytest was not.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_command_installs_the_dev_tools() -> None:
    bootstrap = load_bootstrap()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert {"ruff", "mypy"} <= names(extras["dev"])
    assert "syndicate[dev]" in extras["test"]  # test = dev + the test tools
    for command in ("up", "worker", "status", "check-config", "test"):
        chosen = bootstrap.extras_for(command)
        closure = set(extras[chosen]) | (set(extras["dev"]) if "syndicate[dev]" in extras[chosen] else set())
        assert {"ruff", "mypy"} <= names(sorted(closure)), command
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for tool in ("ruff", "mypy"):
        assert f".venv/bin/{tool}" in readme
        assert (ROOT / ".venv" / "bin" / tool).exists()


def test_the_test_command_runs_in_parallel_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = load_bootstrap()
    monkeypatch.delenv("SYNDICATE_TEST_PROCESSES", raising=False)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert "pytest-xdist" in names(extras["test"])
    assert bootstrap.parallel_args([], cpus=2) == ["-n", "6", "--dist", "loadgroup"]
    assert bootstrap.parallel_args(["tests/cli"], cpus=1) == ["-n", "3", "--dist", "loadgroup"]
    assert bootstrap.parallel_args([], cpus=64)[1] == "8"
    for own in (["-n", "1"], ["-n0"], ["--numprocesses=3"], ["-p", "no:xdist"]):
        assert bootstrap.parallel_args(["-q", *own]) == [], own
    monkeypatch.setenv("SYNDICATE_TEST_PROCESSES", "0")
    assert bootstrap.parallel_args([], cpus=2) == ["-n", "0", "--dist", "loadgroup"]
