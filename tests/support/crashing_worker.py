"""``syndicate worker`` whose consumer loop raises once it has run for a moment: what kombu's Redis
transport does on some broker reconnects (an AttributeError escaping the consumer), which Celery ends
as an "Unrecoverable error". Run as ``python tests/support/crashing_worker.py worker ...``.

Only this first boot is patched: the worker's restart runs the real ``python -m worker.cli``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from celery.worker import loops

from worker.cli import main

_real_asynloop = loops.asynloop
CRASH_AFTER = 2.0


def _crashing_asynloop(
    obj: Any, connection: Any, consumer: Any, blueprint: Any, hub: Any, *rest: Any
) -> None:
    deadline = time.monotonic() + CRASH_AFTER

    def tick() -> None:  # called by kombu's hub on every turn of the loop, outside its error handling
        if time.monotonic() >= deadline:
            hub.on_tick.discard(tick)
            raise AttributeError("'NoneType' object has no attribute 'hostname'")

    hub.on_tick.add(tick)
    _real_asynloop(obj, connection, consumer, blueprint, hub, *rest)


loops.asynloop = _crashing_asynloop

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
