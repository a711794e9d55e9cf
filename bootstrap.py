#!/usr/bin/env python3
"""Quick start without any set-up: ``python3 bootstrap.py up`` or ``python3 bootstrap.py test``.

Creates ``.venv`` next to this file on first use (and refreshes it when pyproject.toml changes),
installs Syndicate into it, then runs ``syndicate up`` or the test suite with that interpreter.
Both install the ``dev`` extra, so ``.venv/bin/ruff`` and ``.venv/bin/mypy`` (named in the README)
exist whichever command ran first; ``test`` adds the test tools on top.
Only the Python standard library is used here, so it runs on a bare Python 3.11.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str) -> None:
    """Create the virtual environment and (re)install the project when its metadata changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit(f"Syndicate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text(encoding="utf-8") == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    print(
        f"installing syndicate{f'[{extras}]' if extras else ''} into {VENV} (first run takes a minute)",
        flush=True,
    )
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", target],
        cwd=ROOT,
        check=True,
    )
    stamp.write_text(digest, encoding="utf-8")


def extras_for(command: str) -> str:
    """The extras installed before ``command``: the test tools for ``test``, the dev tools for anything."""
    return "test" if command == "test" else "dev"


def main(argv: list[str]) -> int:
    """Dispatch ``up`` / ``test`` / any other syndicate subcommand."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    ensure_venv(extras_for(command))
    if command == "test":
        return run_forwarding_ctrl_c([str(PYTHON), "-m", "pytest", *rest])
    return run_forwarding_ctrl_c([str(BIN / "syndicate"), command, *rest])


def run_forwarding_ctrl_c(cmd: list[str]) -> int:
    """Run ``cmd`` to completion, passing SIGINT and SIGTERM on to it so it can stop its children cleanly."""
    proc = subprocess.Popen(cmd)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
