"""The reference Bluesky PDS (``@atproto/pds``) and a did:plc directory, run as real processes for tests.

The peer is installed by ``/work/shared/peers/bluesky-pds/run.sh install`` (``.ci/run`` does it when
missing) into ``$BLUESKY_PEER_DIR`` (default ``/tmp/bluesky-pds-peer``). :class:`BlueskyPeer` starts
``node plc.js`` and ``node pds.js`` from there itself, with the same environment ``run.sh start``
sets but on free ports and with a data directory of its own, so it holds the PIDs, can run beside
another copy and stops exactly what it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.services import free_port

DEFAULT_PEER_DIR = "/tmp/bluesky-pds-peer"  # run.sh's own default
INSTALL_HINT = (
    "install it with `PEER_DIR=/tmp/bluesky-pds-peer bash /work/shared/peers/bluesky-pds/run.sh install` "
    "(about 5 minutes; `python3 bootstrap.py test` does this)"
)


class PeerUnavailable(RuntimeError):
    """The PDS is not installed here, or it would not start."""


def in_ci() -> bool:
    """Whether ``CI`` is set: a peer that cannot run then fails the tests instead of skipping them."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def peer_dir() -> Path:
    """Where the peer's node_modules live."""
    return Path(os.environ.get("BLUESKY_PEER_DIR", DEFAULT_PEER_DIR))


def check_installed(directory: Path) -> None:
    """Raise :class:`PeerUnavailable` (with the install command) if the peer cannot run from ``directory``."""
    if shutil.which("node") is None:
        raise PeerUnavailable(f"node is not on PATH; {INSTALL_HINT}")
    for needed in (
        "pds.js",
        "plc.js",
        "node_modules/@atproto/pds/package.json",
        "node_modules/better-sqlite3",
    ):
        if not (directory / needed).exists():
            raise PeerUnavailable(
                f"the Bluesky PDS peer is not installed in {directory} ({needed} missing); {INSTALL_HINT}"
            )


@dataclass
class Account:
    """An account created on the peer, with an app password for Syndicate to log in with."""

    handle: str
    did: str
    password: str
    app_password: str


@dataclass
class BlueskyPeer:
    """One PDS plus its PLC directory, bound to 127.0.0.1 on free ports."""

    directory: Path = field(default_factory=peer_dir)
    rate_limits: bool = True
    plc_port: int = field(default_factory=free_port)
    pds_port: int = field(default_factory=free_port)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="syn-pds-")))
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The PDS's base URL (what an endpoint's ``service`` is set to)."""
        return f"http://127.0.0.1:{self.pds_port}"

    def xrpc(self, method: str) -> str:
        """The URL of the XRPC ``method``."""
        return f"{self.url}/xrpc/{method}"

    def _spawn(self, script: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{script}.log", "wb")
        proc = subprocess.Popen(
            ["node", f"{script}.js"],
            cwd=self.directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def _wait_health(self, url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PeerUnavailable(f"{proc.args!r} exited with {proc.returncode}: {self.logs()}")
            try:
                if requests.get(url, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise PeerUnavailable(f"{url} did not answer within {timeout}s: {self.logs()}")

    def start(self) -> BlueskyPeer:
        """Start the PLC directory and the PDS and wait until both answer their health checks."""
        data = self.tmp / "data"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PDS_")}
        try:
            check_installed(self.directory)
            (data / "blobs").mkdir(parents=True, exist_ok=True)
            plc = self._spawn("plc", {**base, "PLC_PORT": str(self.plc_port)})
            self._wait_health(f"http://127.0.0.1:{self.plc_port}/_health", plc, 20)
            pds_env = {
                **base,
                "PDS_HOSTNAME": "localhost",
                "PDS_PORT": str(self.pds_port),
                "PDS_DEV_MODE": "true",
                "PDS_DATA_DIRECTORY": str(data),
                "PDS_BLOBSTORE_DISK_LOCATION": str(data / "blobs"),
                "PDS_DID_PLC_URL": f"http://127.0.0.1:{self.plc_port}",
                "PDS_REPO_SIGNING_KEY_K256_PRIVATE_KEY_HEX": secrets.token_hex(32),
                "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": secrets.token_hex(32),
                "PDS_DPOP_SECRET": secrets.token_hex(32),
                "PDS_JWT_SECRET": self.jwt_secret,
                "PDS_ADMIN_PASSWORD": secrets.token_hex(12),
                "PDS_INVITE_REQUIRED": "false",
                "PDS_CRAWLERS": "",
                "PDS_SERVICE_HANDLE_DOMAINS": ".test",
                "PDS_RATE_LIMITS_ENABLED": "true" if self.rate_limits else "false",
            }
            pds = self._spawn("pds", pds_env)
            self._wait_health(self.xrpc("_health"), pds, 60)
        except BaseException:
            self.stop()
            raise
        return self

    def create_account(self, name: str) -> Account:
        """Create ``<name>.test`` with a random password and an app password for it."""
        handle = f"{name}.test"
        password = secrets.token_urlsafe(18)
        answer = requests.post(
            self.xrpc("com.atproto.server.createAccount"),
            json={"handle": handle, "email": f"{name}@example.test", "password": password},
            timeout=30,
        )
        if not answer.ok:
            raise PeerUnavailable(f"createAccount {handle}: HTTP {answer.status_code}: {answer.text[:300]}")
        session = answer.json()
        app = requests.post(
            self.xrpc("com.atproto.server.createAppPassword"),
            json={"name": "syndicate"},
            headers={"Authorization": f"Bearer {session['accessJwt']}"},
            timeout=30,
        )
        if not app.ok:
            raise PeerUnavailable(f"createAppPassword {handle}: HTTP {app.status_code}: {app.text[:300]}")
        return Account(
            handle=handle, did=session["did"], password=password, app_password=app.json()["password"]
        )

    def get(self, method: str, **params: Any) -> requests.Response:
        """An unauthenticated XRPC query (getRecord, listRecords, sync.getBlob are public)."""
        return requests.get(self.xrpc(method), params=params, timeout=30)

    def logs(self) -> str:
        """The end of both processes' output, for failure messages."""
        out = []
        for name in ("plc", "pds"):
            path = self.tmp / f"{name}.log"
            if path.exists():
                out.append(
                    f"----- {name} -----\n{path.read_text(encoding='utf-8', errors='replace')[-3000:]}"
                )
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM the processes this peer started (by PID), SIGKILL what is left, remove the data."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
