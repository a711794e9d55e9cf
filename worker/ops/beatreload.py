"""Beat follows the config file: a changed file changes the schedule without a restart.

:class:`ReloadingScheduler` (``syndicate beat`` installs it as ``beat_scheduler``) is the heartbeat
scheduler that also checks its :class:`worker.ops.configwatch.ConfigWatch` on every tick. When a new
valid config is taken, the sources are synced into the database (new ones get their row), the
schedule becomes one entry per crawled source again (removed sources lose theirs, a changed
``schedule`` takes effect) and every source that was not in the old config is crawled at once,
as a new source is at beat's start. An invalid file changes nothing and is reported.
"""

from __future__ import annotations

import logging
from typing import Any

from config import Config
from worker.app import beat_schedule
from worker.crawl import sync_sources
from worker.ops import configwatch, tasklabels
from worker.ops.heartbeat import HeartbeatScheduler
from worker.ops.sweep import beat_entry as sweep_beat_entry
from worker.outbox.settling import settle_beat_entry
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

# Beat's sends carry readable labels too (the workers import worker.tasks, which connects the same).
tasklabels.connect_signals()


def schedule_for(config: Config, ids: dict[str, int]) -> dict[str, dict[str, object]]:
    """Beat's whole schedule: one entry per crawled source, the sweep and the settling of uncertain shares."""
    schedule = beat_schedule(config, ids)
    schedule["sweep"] = sweep_beat_entry()
    schedule["settle"] = settle_beat_entry()
    return schedule


class ReloadingScheduler(HeartbeatScheduler):
    """The heartbeat scheduler, re-reading the config file on every tick."""

    def setup_schedule(self) -> None:
        """As usual; SIGHUP then asks for a re-read instead of stopping beat."""
        super().setup_schedule()
        configwatch.install_sighup()
        watch = configwatch.current()
        if watch is not None:
            watch.report()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Check the config file (at most every 2 s), then run due entries as usual."""
        watch = configwatch.current()
        if watch is not None:
            before = watch.runtime.config
            if watch.check():
                self._apply(before, watch.runtime.config)
        return float(super().tick(*args, **kwargs))

    def _apply(self, before: Config, after: Config) -> None:
        rt = get_runtime()
        with rt.session() as session:
            ids = sync_sources(session, after)
        self.merge_inplace(schedule_for(after, ids))
        self.sync()
        old = {source.name for source in before.sources}
        added = [
            s for s in after.sources if s.name not in old and s.enabled and s.kind != "push" and s.name in ids
        ]
        for source in added:
            # By name (routed to the crawl queue by the app): operations do not import the tasks module.
            self.app.send_task("syndicate.crawl_source", args=(ids[source.name],))
        log.warning(
            "beat: schedule now has %d sources (new, crawled now: %s)",
            sum(1 for key in self.schedule if key.startswith("crawl:")),
            ", ".join(s.name for s in added) or "none",
        )
