"""The database a command works on: migrated, its sources synced from the config."""

from __future__ import annotations

from config import Config, Settings
from worker.crawl import sync_sources
from worker.runtime import get_runtime
from worker.store.db import upgrade


def prepare_database(settings: Settings, config: Config) -> dict[str, int]:
    """Migrate the schema and sync sources; return source ids by name."""

    upgrade(settings.effective_database_url)
    with get_runtime().session() as session:
        return sync_sources(session, config)
