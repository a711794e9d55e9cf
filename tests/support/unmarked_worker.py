"""``syndicate worker`` that dies (SIGKILL to its whole process group) the moment it takes a message of
one task: after kombu filed the message in ``unacked``, before the ``task_received`` handler marks the
work held (:func:`worker.ops.sweep.mark_received`). The work marker stays "queued" and the message stays
in ``unacked`` until the visibility timeout: the window of a worker or Redis dying between dequeue and
marker, hit every time. Run as ``python tests/support/unmarked_worker.py <task name> worker ...``.

Everything else is the real CLI; only the marker write of the named task is replaced by the kill.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from worker.cli import main
from worker.ops import sweep

_real_mark_received = sweep.mark_received


def _queued(client: Any, task: str, task_id: str, args: Any) -> bool:
    """Whether the work's marker says this very message is queued (waiting for the publisher's marker
    write, which may land just after the message: a pool child publishes, this process takes it)."""
    key = sweep.marker_key(sweep.TRACKED[task], args[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if client.get(key) == sweep.queued_marker(task_id).encode():
            return True
        time.sleep(0.01)
    return False  # a newer message of the same work took the marker over: not the window


def _die_on(task_name: str) -> Any:
    def mark_received(client: Any, task: str, task_id: str, args: Any, *rest: Any, **kwargs: Any) -> None:
        if task == task_name and _queued(client, task, task_id, args):
            print(f"unmarked_worker: took {task} {task_id} {args}; kill -9 before marking it", flush=True)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        _real_mark_received(client, task, task_id, args, *rest, **kwargs)

    return mark_received


if __name__ == "__main__":
    sweep.mark_received = _die_on(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
