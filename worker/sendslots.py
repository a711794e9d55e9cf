"""Send slots: a slow partner never holds every slot of a worker.

A worker node runs ``concurrency`` tasks at once (its slots). A share's send holds its slot until the
partner answers; when every slot of a node waits on slow partners (a webhook answering in 10 s, Slack
in 5 s), nothing else runs there: measured with concurrency 2, file shares of articles pushed 60 s
later were written 181-226 s later.

So the sends to *slow* endpoints together may hold at most ``concurrency - 1`` slots of a node; a send
over that budget is not started but rescheduled (the share's task comes back after about one slow send,
holding no slot meanwhile), and the free slot serves everything else: other endpoints' shares, fetches,
renders. An endpoint is slow while its last send took longer than :data:`SLOW_AFTER` (kept in Redis for
an hour) or one of its sends on this node has been in flight that long. Endpoints not known to be slow
(fast ones, and any before its first send) are never held back, so a fast partner's shares start as
soon as a slot is free, and with a node of one slot nothing is held back at all.

The sends in flight of a node are a Redis sorted set (member ``<endpoint>|<pid>|<token>``, score: the
start), checked and added to in one script. Entries of processes that died (a pool child killed by a
time limit) are dropped by the next acquire, and any older than :data:`STALE_AFTER` regardless. The
node's name and slot count come from Celery's ``worker_init`` (main process, before the pool forks); a
process that is not a worker node (the CLI sending inline) is never held back.

Two more pieces of send coordination shared through Redis live here: :class:`Pacer` (an endpoint's
``min_interval``/``max_per_hour`` and the networks' rate-limit blocks) and :class:`SendingLeases`
(a live sender's claim on a share, kept alive while it sends). The process's instances are built by
:class:`worker.runtime.Runtime` and used by :mod:`worker.outbox`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals

from config.model import EndpointBase
from worker import redisclient
from worker.errors import Deferred

log = logging.getLogger(__name__)

SLOW_AFTER = 2.0
STALE_AFTER = 600.0
# A refused send is tried again after about the endpoint's last send time, within these bounds.
MIN_WAIT = 1.0
MAX_WAIT = 30.0
PREFIX = "syndicate:send-slots:"
SECONDS_PREFIX = "syndicate:send-seconds:"

# Set in the worker's main process by ``worker_init``; the pool's children inherit them.
_node: str | None = None
_slots = 0


def on_worker_init(sender: Any = None, **_: Any) -> None:
    """``worker_init``: note this node's name and slot count (before the pool forks its children)."""
    global _node, _slots
    concurrency = getattr(sender, "concurrency", 0)
    _node = str(getattr(sender, "hostname", "") or "") or None
    _slots = concurrency if isinstance(concurrency, int) else 0


def connect_signals() -> None:
    """Connect :func:`on_worker_init` (idempotent)."""
    signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid="syndicate-send-slots")


def configure(node: str | None, slots: int) -> None:
    """Set this process's node and slot count (what ``worker_init`` does; for tests and tools)."""
    global _node, _slots
    _node, _slots = node, slots


@dataclass
class Slot:
    """A send slot: ``wait`` > 0 means refused (try again in ``wait`` seconds); else release when done."""

    wait: float = 0.0
    client: Any = None
    key: str = ""
    member: str = ""
    endpoint: str = ""
    started: float | None = None

    def sending(self) -> None:
        """The send itself starts (the share is claimed): from now on the slot times it."""
        self.started = time.monotonic()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_: object) -> None:
        release(self)


_client: Any = None
_script: Any = None
_lock = threading.Lock()


def _acquire_script(client: Any) -> Any:
    global _client, _script
    with _lock:
        if client is not _client:
            _client, _script = client, client.register_script(redisclient.SEND_SLOT_ACQUIRE)
        return _script


def _drop_dead(client: Any, key: str) -> None:
    """Remove the entries of this node's processes that no longer exist (a killed pool child)."""
    dead = []
    for member in client.zrange(key, 0, -1):
        text = member.decode() if isinstance(member, bytes) else str(member)
        try:
            os.kill(int(text.rsplit("|", 2)[1]), 0)
        except ProcessLookupError:
            dead.append(member)
        except (ValueError, IndexError, PermissionError):
            continue
    if dead:
        client.zrem(key, *dead)


def acquire(client: Any, endpoint: str) -> Slot:
    """Take a send slot for ``endpoint`` on this node, or say how long to wait (see the module doc)."""
    if client is None or _node is None or _slots < 2:
        return Slot(endpoint=endpoint)
    key = PREFIX + _node
    member = f"{endpoint}|{os.getpid()}|{uuid.uuid4().hex[:8]}"
    try:
        _drop_dead(client, key)
        answer = _acquire_script(client)(
            keys=[key],
            args=[
                time.time(),
                SLOW_AFTER,
                _slots - 1,
                endpoint,
                member,
                SECONDS_PREFIX,
                time.time() - STALE_AFTER,
            ],
        )
    except redis.RedisError as exc:
        log.warning("send slots unavailable (%s): sending without the slow-partner budget", exc)
        return Slot(endpoint=endpoint)
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    if text == "0":
        return Slot(client=client, key=key, member=member, endpoint=endpoint)
    last = float(text or MIN_WAIT)
    return Slot(wait=min(max(last, MIN_WAIT), MAX_WAIT) * random.uniform(0.8, 1.2), endpoint=endpoint)


def release(slot: Slot) -> None:
    """Free the slot, and record how long the send took (what makes an endpoint slow), if one started:
    a share found sent or claimed by another worker meanwhile says nothing about the partner."""
    if not slot.member or slot.client is None:
        return
    try:
        pipe = slot.client.pipeline(transaction=False)
        pipe.zrem(slot.key, slot.member)
        if slot.started is not None:
            seconds = time.monotonic() - slot.started
            pipe.set(SECONDS_PREFIX + slot.endpoint, f"{seconds:.3f}", ex=3600)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("send slot of %s not released (it expires): %s", slot.endpoint, exc)


connect_signals()


# ---------------------------------------------------------------- pacing


class Pacer:
    """Per-endpoint pacing and network rate-limit blocks, shared by all processes through Redis."""

    def __init__(self, redis_client: Any) -> None:
        """Keep pacing state in ``redis_client`` (``None``: no pacing, e.g. an inline CLI run)."""
        self.redis = redis_client
        self._script = (
            None if redis_client is None else redis_client.register_script(redisclient.PACE_RESERVE)
        )

    def reserve(self, endpoint: EndpointBase, token: str) -> float:
        """Take a send slot for ``endpoint`` now (return 0) or say how many seconds until one opens."""
        if self._script is None:
            return 0.0
        try:
            wait = self._script(
                keys=[f"syndicate:pace:{endpoint.name}", f"syndicate:block:{endpoint.name}"],
                args=[time.time(), endpoint.min_interval or 0, endpoint.max_per_hour or 0, token],
            )
        except redis.RedisError as exc:
            if not (endpoint.min_interval or endpoint.max_per_hour):
                return 0.0  # nothing to pace; a network's block is lost with Redis, its 429 comes back
            raise Deferred(30.0, f"pacing needs Redis, which is unreachable: {exc}") from None
        return float(wait)

    def block(self, endpoint: str, seconds: float) -> None:
        """Hold every post to ``endpoint`` for ``seconds`` (the network said so)."""
        if self.redis is not None and seconds > 0:
            until = time.time() + seconds
            try:
                self.redis.set(f"syndicate:block:{endpoint}", str(until), ex=int(seconds) + 1)
            except redis.RedisError as exc:
                log.warning("%s: cannot record the network's rate-limit block: %s", endpoint, exc)


# ---------------------------------------------------------------- sending leases

# A claim's holder keeps ``syndicate:sending:<share id>`` alive in Redis while it sends (refreshed
# every SENDING_REFRESH seconds by a thread of its process, so a slow but live request keeps it);
# a holder that died stops refreshing and the key expires. A claim older than SENDING_TTL whose
# key is gone is dead, and recovered within a sweep of that, not after the task time limit (the
# claim lease, 300 s by default). Without Redis the claim lease alone decides, as before.
SENDING_TTL = 20.0
SENDING_REFRESH = 5.0
SENDING_PREFIX = "syndicate:sending:"


class SendingLeases:
    """The sending leases this process holds, kept alive by one daemon thread (see above)."""

    def __init__(self, redis_client: Any) -> None:
        """Keep leases in ``redis_client`` (``None``: no leases, the claim lease alone decides)."""
        self.redis = redis_client
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, share_ids: Iterable[int]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for share_id in share_ids:
                pipe.set(SENDING_PREFIX + str(share_id), self._held.get(share_id, "1"), ex=int(SENDING_TTL))
            pipe.execute()
        except redis.RedisError as exc:  # the claim lease still bounds the claim
            log.warning("sending leases not written: %s", exc)

    def _refresh(self) -> None:
        while True:
            time.sleep(SENDING_REFRESH)
            with self._lock:
                held = list(self._held)
            if held:
                self._write(held)

    @contextmanager
    def hold(self, share_id: int) -> Iterator[None]:
        """Hold the lease of ``share_id`` (just claimed) until the block ends (its outcome committed)."""
        if self.redis is None:
            yield
            return
        with self._lock:
            self._held[share_id] = f"{os.getpid()}"
            if self._thread is None or not self._thread.is_alive() or self._thread.ident is None:
                self._thread = threading.Thread(target=self._refresh, name="sending-leases", daemon=True)
                self._thread.start()
        self._write([share_id])
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(share_id, None)
            try:
                self.redis.delete(SENDING_PREFIX + str(share_id))
            except redis.RedisError as exc:
                log.warning("sending lease of share %s not released: %s", share_id, exc)

    def alive(self, share_ids: Sequence[int]) -> set[int] | None:
        """Which of ``share_ids`` have a live lease; None when Redis cannot say (then assume all)."""
        if self.redis is None or not share_ids:
            return None if self.redis is None else set()
        try:
            values = self.redis.mget([SENDING_PREFIX + str(i) for i in share_ids])
        except redis.RedisError:
            return None
        return {i for i, value in zip(share_ids, values, strict=True) if value is not None}
