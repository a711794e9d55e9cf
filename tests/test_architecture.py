"""The layer contracts of ARCHITECTURE.md, as ``lint-imports`` checks them in CI (pyproject.toml).

The repository keeps them; and each kind of contract does fail when broken, checked on a copy of
the code with one forbidden import added (which may break another contract too: a stage that
imports the web app also closes a cycle, since the web app imports the stages).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_keeps_every_layer_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("path", "line", "broken"),
    [
        ("config/settings.py", "import worker.errors", "config <- feeds <- worker"),
        ("worker/fetch/robots.py", "import worker.web.app", "never import the web app"),
        ("worker/ops/status.py", "import worker.cli.common", "Operations never import"),
        ("worker/errors.py", "import worker.http", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, path: str, line: str, broken: str) -> None:
    for package in ("config", "feeds", "worker"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout.split("Broken contracts")[1]
