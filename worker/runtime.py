"""The per-process runtime: settings, the loaded YAML config and a database session factory.

Celery tasks, the HTTP app and the CLI each build one :class:`Runtime` and hand it to the plain
pipeline functions, which therefore never read the environment themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from config import Config, Settings, get_settings, load_config
from worker.fetch import Fetcher
from worker.store.db import get_sessionmaker


@dataclass
class Runtime:
    """What a pipeline stage needs from its process."""

    settings: Settings
    config: Config
    base_dir: Path = field(default_factory=Path.cwd)

    @cached_property
    def sessionmaker(self) -> sessionmaker[Session]:
        """Session factory for the configured database."""
        return get_sessionmaker(self.settings.effective_database_url)

    @cached_property
    def fetcher(self) -> Fetcher:
        """One fetcher per process, so connections to a partner site are pooled across tasks."""
        return Fetcher(self.config.fetch)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL."""
        return self.settings.effective_database_url


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process-wide runtime, built on first use from the environment and the config file."""
    global _runtime
    if _runtime is None:
        settings = get_settings()
        _runtime = Runtime(settings=settings, config=load_config(settings.config_path))
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the process-wide runtime; used by the CLI and tests."""
    global _runtime
    _runtime = runtime
