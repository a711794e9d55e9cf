"""A real Mastodon API peer for tests: ``mastodon-mock`` run as a subprocess on a free port.

:class:`MastodonPeer` writes its own TOML config (in-memory SQLite, a media directory of its
own, the rate limit on or off), starts ``python -m mastodon_mock serve``, waits until
``GET /api/v2/instance`` answers and stops the server by its PID. It also drives the mock's
control plane (``/api/v1/_mock/faults``, ``/api/v1/_mock/reset``) and reads back what was posted.
The seeded account's bearer token is :data:`TOKEN`.

Fixtures (starting the server costs about a second or two, so they are shared):
``mastodon_peer`` (session, no rate limit; fault rules cleared after each use through
``mastodon``) and ``mastodon_limited_peer`` (module, at most :data:`LIMITED_REQUESTS` requests an
hour per token).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import requests

from tests.support.services import free_port

# The mock's seeded bearer token (not a secret).
TOKEN = "mock_token"
LIMITED_REQUESTS = 2
START_TIMEOUT = 30.0


class MastodonPeer:
    """One ``mastodon-mock`` server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, *, rate_limit: int | None = None, window_seconds: int = 3600) -> None:
        """Configure (not start) a server; ``rate_limit`` requests per ``window_seconds`` and token."""
        self.port = free_port()
        self.rate_limit = rate_limit
        self.token = TOKEN
        self.window_seconds = window_seconds
        self.tmp = Path(tempfile.mkdtemp(prefix="syn-mastodon-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self.session.trust_env = False

    @property
    def url(self) -> str:
        """The instance's base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """What the server printed so far."""
        path = self.tmp / "server.log"
        return path.read_text(errors="replace", encoding="utf-8") if path.exists() else ""

    def config_text(self) -> str:
        """The TOML config the server runs with."""
        media = (self.tmp / "media").as_posix()
        lines = [
            f'domain = "127.0.0.1:{self.port}"',
            'url_scheme = "http"',
            f'media_storage_path = "{media}"',
            "[database]",
            'path = ":memory:"',
            "[ratelimit]",
            f"enabled = {'true' if self.rate_limit else 'false'}",
            f"limit = {self.rate_limit or 300}",
            f"window_seconds = {self.window_seconds}",
            "[faults]",
            "enabled = true",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> MastodonPeer:
        """Start the server and wait until ``/api/v2/instance`` answers 200."""
        config = self.tmp / "mastodon_mock.toml"
        config.write_text(self.config_text(), encoding="utf-8")
        log = (self.tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mastodon_mock",
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mastodon-mock exited with {self.proc.returncode}: {self.log[-2000:]}")
            try:
                # Not through the session: a rate-limited peer counts every request.
                if requests.get(self.url + "/api/v2/instance", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"mastodon-mock did not answer within {START_TIMEOUT}s: {self.log[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.session.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> MastodonPeer:
        """Start on entering the ``with`` block."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving it."""
        self.stop()

    # ------------------------------------------------------------ control plane

    def add_fault(
        self,
        effect: dict[str, Any],
        *,
        path: str,
        methods: tuple[str, ...] = ("POST",),
        count: int | None = 1,
    ) -> str:
        """Add a fault rule (``effect`` as in the mock's spec: status, ratelimit, latency, malformed)."""
        rule: dict[str, Any] = {"match": {"methods": list(methods), "path": path}, "effect": effect}
        if count is not None:
            rule["count"] = count
        answer = self.session.post(self.url + "/api/v1/_mock/faults", json=rule, timeout=5)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def clear_faults(self) -> None:
        """Drop every fault rule."""
        self.session.delete(self.url + "/api/v1/_mock/faults", timeout=5).raise_for_status()

    def faults(self) -> list[dict[str, Any]]:
        """The active fault rules, with their remaining budgets."""
        answer = self.session.get(self.url + "/api/v1/_mock/faults", timeout=5)
        answer.raise_for_status()
        rules: list[dict[str, Any]] = answer.json()
        return rules

    # ------------------------------------------------------------ reading back

    def api(self, path: str, **params: Any) -> Any:
        """``GET path`` as the seeded account; the decoded JSON."""
        answer = self.session.get(
            self.url + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        answer.raise_for_status()
        return answer.json()

    def account_id(self) -> str:
        """The seeded account's id."""
        return str(self.api("/api/v1/accounts/verify_credentials")["id"])

    def statuses(self, limit: int = 40) -> list[dict[str, Any]]:
        """The seeded account's latest statuses, newest first."""
        found: list[dict[str, Any]] = self.api(f"/api/v1/accounts/{self.account_id()}/statuses", limit=limit)
        return found

    def status(self, status_id: str) -> dict[str, Any]:
        """One status, as ``GET /api/v1/statuses/:id`` shows it."""
        found: dict[str, Any] = self.api(f"/api/v1/statuses/{status_id}")
        return found

    def source_text(self, status_id: str) -> str:
        """The plain text a status was posted with (``GET /api/v1/statuses/:id/source``)."""
        return str(self.api(f"/api/v1/statuses/{status_id}/source")["text"])


@pytest.fixture(scope="session")
def mastodon_peer() -> Iterator[MastodonPeer]:
    """A running mastodon-mock without a rate limit, shared by the whole session."""
    with MastodonPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def mastodon_limited_peer() -> Iterator[MastodonPeer]:
    """A running mastodon-mock that allows :data:`LIMITED_REQUESTS` requests an hour per token."""
    with MastodonPeer(rate_limit=LIMITED_REQUESTS) as peer:
        yield peer


@pytest.fixture
def mastodon(mastodon_peer: MastodonPeer) -> Iterator[MastodonPeer]:
    """The session's peer, with its fault rules cleared after the test."""
    try:
        yield mastodon_peer
    finally:
        mastodon_peer.clear_faults()
