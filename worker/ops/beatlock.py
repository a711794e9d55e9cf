"""One beat for the whole deployment: ``syndicate beat`` runs only while it holds a leader lock in Redis.

Celery beat keeps its schedule per process, so two beats (one per machine, or a second one started by
mistake) would each send every crawl. Every beat therefore first takes ``syndicate:beat-leader``
(``SET NX`` with a TTL, renewed by a thread every third of it); a beat that finds the lock taken
stands by and takes over within one TTL after the leader stops renewing (killed, machine gone).

A leader that finds the lock held by another beat (possible only after it could not reach Redis for a
whole TTL) stops itself with SIGTERM, so at most one beat sends ticks; a flushed Redis is re-claimed by
the leader at its next renewal. Without Redis no task can be sent anyway, so renewal errors are
logged and retried rather than ending the beat.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from worker import redisclient

log = logging.getLogger(__name__)

LEADER_KEY = "syndicate:beat-leader"
LEADER_TTL = 30.0


class BeatLeader:
    """The leader lock of one beat process (see the module docstring)."""

    def __init__(self, client: Any, ttl: float = LEADER_TTL, key: str = LEADER_KEY) -> None:
        """Claim ``key`` in ``client`` for ``ttl`` seconds at a time, as this host and process."""
        self.client = client
        self.ttl = ttl
        self.key = key
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claim = client.register_script(redisclient.LEADER_CLAIM)
        self._release = client.register_script(redisclient.RELEASE_IF_HELD)
        self._stop = threading.Event()

    def claim(self) -> bool:
        """Take or renew the lock; whether this process holds it now."""
        return bool(self._claim(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))

    def holder(self) -> str | None:
        """Who holds the lock now (``host:pid:nonce``), if anyone."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def wait(self, poll: float | None = None, on_wait: Callable[[], None] | None = None) -> None:
        """Block until this process leads; a standby says once who leads instead.

        ``on_wait`` runs after each check that found another leader (the standby's heartbeat).
        """
        poll = poll if poll is not None else self.ttl / 3
        announced = False
        while True:
            try:
                if self.claim():
                    log.info("beat leader lock %s taken by %s", self.key, self.token)
                    return
                if on_wait is not None:
                    on_wait()
                if not announced:
                    log.warning(
                        "another beat leads (%s); standing by until its lock %s expires",
                        self.holder(),
                        self.key,
                    )
                    announced = True
            except redis.RedisError as exc:
                log.warning("beat leader lock: Redis unreachable (%s); retrying", exc)
            time.sleep(poll)

    def keep(self, on_lost: Callable[[], None] | None = None) -> threading.Thread:
        """Renew the lock every third of its TTL in a thread; call ``on_lost`` (default: SIGTERM) if taken."""
        lost = on_lost or (lambda: os.kill(os.getpid(), signal.SIGTERM))

        def renew() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    held = self.claim()
                except redis.RedisError as exc:
                    log.warning("beat leader lock: could not renew (%s); retrying", exc)
                    continue
                if not held:
                    log.error("beat leader lock taken by %s; this beat stops", self.holder())
                    lost()
                    return

        thread = threading.Thread(target=renew, name="beat-leader", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Stop renewing and give the lock up (only if still ours), so a standby takes over at once."""
        self._stop.set()
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as exc:
            log.warning("beat leader lock: could not release (%s); it expires on its own", exc)
