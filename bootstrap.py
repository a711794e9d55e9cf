#!/usr/bin/env python3
"""Quick start without any set-up: ``python3 bootstrap.py up`` or ``python3 bootstrap.py test``.

Creates ``.venv`` next to this file on first use (and refreshes it when pyproject.toml changes),
installs Syndicate into it, then runs ``syndicate up`` or the test suite with that interpreter.
Both install the ``dev`` extra, so ``.venv/bin/ruff`` and ``.venv/bin/mypy`` (named in the README)
exist whichever command ran first; ``test`` adds the test tools on top.

``test`` first makes the machine ready for every test (:func:`prepare_test_machine`): what pip
cannot bring is installed when missing and possible (PostgreSQL server binaries, the ``postgres``
user, git, chromium and nginx through apt-get as root; the reference Bluesky PDS through
``../shared/peers/bluesky-pds/run.sh install`` into ``$BLUESKY_PEER_DIR``, default
``/tmp/bluesky-pds-peer``), and what is present is left alone. Each line says what was found, done
or why it could not be, and which tests skip then. The tests start their own servers from these.
``SYNDICATE_TEST_INSTALL=0`` only reports. Only the Python standard library is used here, so it
runs on a bare Python 3.11.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
# run.sh's own default, and tests/support/bluesky_peer.py's: a fixed name, so one install serves every clone.
DEFAULT_PEER_DIR = "/tmp/bluesky-pds-peer"  # noqa: S108
PEER_SCRIPT = ROOT.parent / "shared" / "peers" / "bluesky-pds" / "run.sh"


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
        prepare_test_machine()
        return run_forwarding_ctrl_c([str(PYTHON), "-m", "pytest", *parallel_args(rest), *rest])
    return run_forwarding_ctrl_c([str(BIN / "syndicate"), command, *rest])


def parallel_args(rest: list[str], cpus: int | None = None) -> list[str]:
    """pytest-xdist options for the test run, unless ``rest`` chooses its own (``-n``, ``-p no:xdist``).

    Most tests wait on processes they started (workers, beat, servers), so three test processes per
    core keep the cores busy (on 2 cores the suite took 13 min with 6, 19 with 4);
    ``SYNDICATE_TEST_PROCESSES`` overrides the count (0: one process).
    Tests that share one module-wide rig stay in one process (``xdist_group``, ``--dist loadgroup``).
    """
    chosen = any(
        a in ("-n", "--numprocesses", "no:xdist") or a.startswith(("-n", "--numprocesses=")) for a in rest
    )
    if chosen:
        return []
    count = os.environ.get("SYNDICATE_TEST_PROCESSES") or str(
        min(8, max(3, 3 * (cpus or os.cpu_count() or 1)))
    )
    return ["-n", count, "--dist", "loadgroup"]


class Machine(NamedTuple):
    """What this machine has that the tests need beyond pip (see :func:`probe`)."""

    root: bool
    apt: bool
    initdb: bool
    postgres_user: bool
    git: bool
    chromium: bool
    node: bool
    pds: bool
    pds_script: bool
    peer_dir: str
    nginx: bool = True


class Step(NamedTuple):
    """One line of the test set-up: ``name``, what is the case (``note``), and a command to run or None."""

    name: str
    note: str
    command: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()


def probe(environ: dict[str, str] | None = None) -> Machine:
    """What this machine has now (nothing is changed)."""
    environ = dict(os.environ if environ is None else environ)
    peer_dir = environ.get("BLUESKY_PEER_DIR") or DEFAULT_PEER_DIR
    peer = Path(peer_dir)
    chromium = [environ.get("CHROMIUM") or "", "chromium", "chromium-browser"]
    return Machine(
        root=hasattr(os, "geteuid") and os.geteuid() == 0,
        apt=shutil.which("apt-get") is not None,
        initdb=shutil.which("initdb") is not None or bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        postgres_user=_has_user("postgres"),
        git=shutil.which("git") is not None,
        chromium=any(name and shutil.which(name) for name in chromium),
        node=shutil.which("node") is not None and shutil.which("npm") is not None,
        pds=(peer / "node_modules/@atproto/pds/package.json").is_file()
        and (peer / "node_modules/better-sqlite3").is_dir(),
        pds_script=PEER_SCRIPT.is_file(),
        peer_dir=peer_dir,
        nginx=shutil.which("nginx") is not None,
    )


def _has_user(name: str) -> bool:
    try:
        import pwd  # noqa: PLC0415  (POSIX only: here, so that the module still loads elsewhere)
    except ImportError:
        return False
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _apt(package: str) -> tuple[str, ...]:
    return ("apt-get", "install", "-y", "-qq", package)


def plan(machine: Machine) -> list[Step]:
    """The set-up steps for ``machine``: a command for what is missing and installable, else a note."""
    can_apt = machine.root and machine.apt
    why_not = "not root" if not machine.root else "no apt-get"
    steps: list[Step] = []
    if machine.initdb:
        steps.append(Step("PostgreSQL server", "present"))
    elif can_apt:
        steps.append(Step("PostgreSQL server", "installing (apt-get install postgresql)", _apt("postgresql")))
    else:
        steps.append(
            Step(
                "PostgreSQL server",
                f"missing and cannot install ({why_not}): the PostgreSQL tests skip; "
                "install initdb/pg_ctl (apt-get install postgresql)",
            )
        )
    if machine.root and (machine.initdb or can_apt):
        # initdb refuses to run as root: the tests run the server as this user.
        useradd = ("useradd", "--system", "--home", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres")
        if machine.postgres_user:
            steps.append(Step("postgres user", "present"))
        else:
            steps.append(
                Step(
                    "postgres user",
                    "creating it (initdb will not run as root)",
                    useradd,
                )
            )
    for name, present, package, skipped in (
        ("git", machine.git, "git", "the fresh-clone quick start test skips"),
        ("chromium", machine.chromium, "chromium", "the status page browser test skips"),
        ("nginx", machine.nginx, "nginx-light", "the nginx export path test skips"),
    ):
        if present:
            steps.append(Step(name, "present"))
        elif can_apt:
            steps.append(Step(name, f"installing (apt-get install {package})", _apt(package)))
        else:
            steps.append(Step(name, f"missing and cannot install ({why_not}): {skipped}"))
    where = machine.peer_dir
    if machine.pds:
        steps.append(Step("Bluesky PDS", f"present in {where}"))
    elif not machine.pds_script:
        missing = f"missing, and {PEER_SCRIPT} is not there to install it: the Bluesky tests skip"
        steps.append(Step("Bluesky PDS", missing))
    elif not machine.node:
        steps.append(Step("Bluesky PDS", "missing, and node/npm are not installed: the Bluesky tests skip"))
    else:
        steps.append(
            Step(
                "Bluesky PDS",
                f"installing into {where} (npm install and a native build, about 5 minutes)",
                ("bash", str(PEER_SCRIPT), "install"),
                (("PEER_DIR", where),),
            )
        )
    return steps


def prepare_test_machine(
    machine: Machine | None = None,
    run: Callable[..., subprocess.CompletedProcess[bytes]] = subprocess.run,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> list[Step]:
    """Install what the tests need and is missing (see the module docstring); return the plan followed.

    ``BLUESKY_PEER_DIR`` is set for the tests (they look for the PDS there). A step that fails is
    reported and the others go on: the tests it serves skip (or fail under ``CI=true``) with their reason.
    """
    machine = machine or probe()
    os.environ["BLUESKY_PEER_DIR"] = machine.peer_dir
    install = os.environ.get("SYNDICATE_TEST_INSTALL", "1").strip().lower() not in ("0", "false", "no")
    steps = plan(machine)
    apt_updated = False
    for step in steps:
        if step.command is None or not install:
            note = step.note if step.command is None else "missing (SYNDICATE_TEST_INSTALL=0: not installed)"
            say(f"test set-up: {step.name}: {note}")
            continue
        say(f"test set-up: {step.name}: {step.note}")
        if step.command[0] == "apt-get" and not apt_updated:
            run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
            apt_updated = True
        env = {**os.environ, **dict(step.env), "DEBIAN_FRONTEND": "noninteractive"}
        quiet = subprocess.DEVNULL if step.command[0] == "apt-get" else None
        done = run(list(step.command), env=env, check=False, stdout=quiet)
        if done.returncode != 0:
            say(f"test set-up: {step.name}: failed (exit {done.returncode}); the tests that need it skip")
    return steps


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
