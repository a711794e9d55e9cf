"""``python3 bootstrap.py test`` readies the machine for every test before running them (as CI did alone).

What it decides is checked for machines with and without each part; what it does is checked for real on
this machine, where every part is present (installing them here would clash with whoever set it up).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_bootstrap import load_bootstrap

ROOT = Path(__file__).resolve().parents[2]
bootstrap = load_bootstrap()
EVERYTHING = bootstrap.Machine(
    root=True,
    apt=True,
    initdb=True,
    postgres_user=True,
    git=True,
    chromium=True,
    node=True,
    pds=True,
    pds_script=True,
    peer_dir="/srv/pds",
)
BARE = EVERYTHING._replace(
    initdb=False, postgres_user=False, git=False, chromium=False, nginx=False, pds=False
)


def steps_of(machine: Any) -> dict[str, Any]:
    return {step.name: step for step in bootstrap.plan(machine)}


def test_a_ready_machine_installs_nothing() -> None:
    steps = steps_of(EVERYTHING)
    assert set(steps) == {"PostgreSQL server", "postgres user", "git", "chromium", "nginx", "Bluesky PDS"}
    assert all(step.command is None for step in steps.values())
    assert steps["Bluesky PDS"].note == "present in /srv/pds"


def test_a_bare_machine_as_root_installs_each_missing_part() -> None:
    steps = steps_of(BARE)
    assert steps["PostgreSQL server"].command == ("apt-get", "install", "-y", "-qq", "postgresql")
    assert steps["postgres user"].command[:1] == ("useradd",)
    assert steps["postgres user"].command[-1] == "postgres"
    assert steps["git"].command == ("apt-get", "install", "-y", "-qq", "git")
    assert steps["chromium"].command == ("apt-get", "install", "-y", "-qq", "chromium")
    pds = steps["Bluesky PDS"]
    assert pds.command == ("bash", str(bootstrap.PEER_SCRIPT), "install")
    assert dict(pds.env) == {"PEER_DIR": "/srv/pds"}


def test_without_root_or_the_installer_it_says_what_will_skip() -> None:
    steps = steps_of(BARE._replace(root=False))
    assert [name for name, step in steps.items() if step.command is not None] == ["Bluesky PDS"]
    assert "postgres user" not in steps  # only root needs one (initdb refuses root)
    assert "not root" in steps["PostgreSQL server"].note and "skip" in steps["PostgreSQL server"].note
    assert "browser test skips" in steps["chromium"].note
    no_script = steps_of(BARE._replace(pds_script=False))["Bluesky PDS"]
    assert no_script.command is None and "Bluesky tests skip" in no_script.note
    no_node = steps_of(BARE._replace(node=False))["Bluesky PDS"]
    assert no_node.command is None and "node/npm" in no_node.note
    no_apt = steps_of(BARE._replace(apt=False))
    assert no_apt["chromium"].command is None and "no apt-get" in no_apt["chromium"].note
    # The PDS installer needs neither root nor apt.
    assert steps_of(BARE._replace(root=False, apt=False))["Bluesky PDS"].command is not None


def test_the_peer_dir_is_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    machine = bootstrap.probe({"BLUESKY_PEER_DIR": str(tmp_path / "pds")})
    assert machine.peer_dir == str(tmp_path / "pds") and not machine.pds
    assert bootstrap.probe({}).peer_dir == "/tmp/bluesky-pds-peer"


class Installer:
    """Stands in for apt-get, useradd and run.sh (they must not run here): records and answers each call."""

    def __init__(self, failing: str = "") -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.failing = failing

    def __call__(self, cmd: list[str], env: dict[str, str] | None = None, **_: Any) -> Any:
        self.calls.append((cmd, env or {}))
        return subprocess.CompletedProcess(cmd, 1 if self.failing in cmd else 0)


def test_a_bare_machine_gets_one_apt_update_then_each_install_and_a_failure_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNDICATE_TEST_INSTALL", raising=False)
    monkeypatch.setenv("BLUESKY_PEER_DIR", "/elsewhere")
    said: list[str] = []
    installer = Installer(failing="chromium")
    bootstrap.prepare_test_machine(BARE, run=installer, say=said.append)
    commands = [cmd for cmd, _ in installer.calls]
    assert commands[0] == ["apt-get", "update", "-qq"]
    assert [c[0] for c in commands[1:]] == ["apt-get", "useradd", "apt-get", "apt-get", "apt-get", "bash"]
    assert installer.calls[-1][1]["PEER_DIR"] == "/srv/pds"
    assert os.environ["BLUESKY_PEER_DIR"] == "/srv/pds"  # where the tests will look for the PDS
    assert "test set-up: chromium: failed (exit 1); the tests that need it skip" in said
    assert said[-1].startswith("test set-up: Bluesky PDS: installing into /srv/pds")


def test_install_off_only_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNDICATE_TEST_INSTALL", "0")
    monkeypatch.setenv("BLUESKY_PEER_DIR", "/elsewhere")
    said: list[str] = []
    installer = Installer()
    bootstrap.prepare_test_machine(BARE, run=installer, say=said.append)
    assert installer.calls == []
    assert said[0] == "test set-up: PostgreSQL server: missing (SYNDICATE_TEST_INSTALL=0: not installed)"
    assert len(said) == 6


def _everything_here() -> bool:
    machine = bootstrap.probe()
    postgres_user = machine.postgres_user or not machine.root
    return all((machine.initdb, postgres_user, machine.git, machine.chromium, machine.nginx, machine.pds))


@pytest.mark.skipif(not _everything_here(), reason="a part is missing here; its install is not tested")
def test_the_readme_test_command_on_a_ready_machine_installs_nothing_and_runs_the_tests() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BLUESKY_PEER_DIR", "SYNDICATE_TEST_INSTALL")}
    result = subprocess.run(
        [sys.executable, "bootstrap.py", "test", "-q", "tests/cli/test_cli_bootstrap.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    setup = [line for line in result.stdout.splitlines() if line.startswith("test set-up: ")]
    assert setup == [
        "test set-up: PostgreSQL server: present",
        *(["test set-up: postgres user: present"] if os.geteuid() == 0 else []),
        "test set-up: git: present",
        "test set-up: chromium: present",
        "test set-up: nginx: present",
        "test set-up: Bluesky PDS: present in /tmp/bluesky-pds-peer",
    ], result.stdout
    assert "passed" in result.stdout
