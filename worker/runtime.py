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
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from config import Config, Settings, get_settings, load_config
from config.model import DEFAULT_SHARE_TIMEOUT
from worker.fetch import Fetcher
from worker.http import HttpClient
from worker.store.db import get_sessionmaker

if TYPE_CHECKING:
    from worker.outbox.leases import SendingLeases
    from worker.outbox.pacing import Pacer
    from worker.share import Endpoint

# Networks answer in well under this; a slower answer is treated as lost (``sent``, maybe posted).
# Each endpoint's ``timeout`` overrides it per request (see Endpoint.send).
SHARE_TIMEOUT = DEFAULT_SHARE_TIMEOUT


@dataclass
class Runtime:
    """What a pipeline stage needs from its process."""

    settings: Settings
    config: Config
    base_dir: Path = field(default_factory=Path.cwd)
    redis_client: Any = None
    _endpoints: dict[str, Endpoint] = field(default_factory=dict, repr=False)

    @cached_property
    def sessionmaker(self) -> sessionmaker[Session]:
        """Session factory for the configured database."""
        return get_sessionmaker(self.settings.effective_database_url)

    @cached_property
    def fetcher(self) -> Fetcher:
        """One fetcher per process: pooled connections; robots.txt cache and host limits shared in Redis.

        ``ingest=True`` fetches also refuse this deployment's own web app, Flower and Redis ports.
        """
        return Fetcher(self.config.fetch, redis=self.redis_client, deny=self.own_services)

    @cached_property
    def own_services(self) -> tuple[Any, ...]:
        """Guard rules for this deployment's own web app, Flower and Redis, which no outside URL may reach."""
        from worker.ssrf import own_service_rules

        settings = self.settings
        return tuple(
            own_service_rules(
                http_port=settings.http_port,
                flower_port=settings.flower_port,
                redis_url=settings.effective_redis_url,
                public_url=settings.public_url,
            )
        )

    @cached_property
    def share_http(self) -> HttpClient:
        """One pooled client per process for the networks' APIs (operator-configured URLs)."""
        return HttpClient(user_agent=self.config.fetch.user_agent, timeout=SHARE_TIMEOUT, max_bytes=2_000_000)

    @cached_property
    def media_http(self) -> HttpClient:
        """One pooled client per process for lead images.

        Their URLs come from partner pages or pushed articles, so they pass the SSRF guard and may
        never reach this deployment's own services, whatever ``allow_hosts`` admits.
        """
        fetch = self.config.fetch
        return HttpClient(
            user_agent=fetch.user_agent,
            timeout=fetch.timeout,
            max_bytes=15_000_000,
            allow_hosts=fetch.allow_hosts,
            deny=self.own_services,
        )

    @cached_property
    def pacer(self) -> Pacer:
        """Endpoint pacing shared by every process through Redis (none when Redis is not used)."""
        from worker.outbox.pacing import Pacer

        return Pacer(self.redis_client)

    @cached_property
    def sending_leases(self) -> SendingLeases:
        """The sending leases of this process's deliveries (see worker/outbox/leases.py)."""
        from worker.outbox.leases import SendingLeases

        return SendingLeases(self.redis_client)

    @property
    def claim_lease(self) -> float:
        """Seconds after which a ``sending`` claim cannot belong to a live task (the hard time limit)."""
        from worker.app import task_time_limit

        return float(task_time_limit(self.settings))

    def replace_config(self, config: Config) -> None:
        """Run on ``config`` from now on (a reload, see :mod:`worker.configwatch`).

        Endpoints are built again on next use; the HTTP clients too when the fetch policy changed.
        Work already running keeps the config object it started with.
        """
        old, self.config = self.config, config
        self._endpoints = {}
        if config.fetch != old.fetch:
            for name in ("fetcher", "share_http", "media_http"):
                self.__dict__.pop(name, None)

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint called ``name``, built once per process (its HTTP sessions are reused)."""
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            from worker.outbox.endpoints import DatabaseTokenStore
            from worker.share import get_endpoint

            endpoint = get_endpoint(
                self.config.endpoint(name),
                http=self.share_http,
                media_http=self.media_http,
                tokens=DatabaseTokenStore(self),
                base_dir=self.base_dir,
            )
            self._endpoints[name] = endpoint
        return endpoint

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
        from worker import redisclient

        settings = get_settings()
        _runtime = Runtime(
            settings=settings,
            config=load_config(settings.config_path),
            redis_client=redisclient.connect(settings.effective_redis_url),
        )
    return _runtime


def installed_runtime() -> Runtime | None:
    """The process-wide runtime if one was built or installed (:func:`get_runtime` would build one)."""
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the process-wide runtime; used by the CLI and tests."""
    global _runtime
    _runtime = runtime
