"""Process settings read from the environment: one typed, frozen object.

Every environment variable Syndicate understands is declared here, so ``grep`` for a name finds its
one reader. Unknown ``SYNDICATE_*`` variables are ignored; malformed known ones fail at start-up with
a message naming the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path(__file__).with_name("syndicate.yaml")
# The longest a task may run (hard limit), unless half the visibility timeout is shorter.
TASK_TIME_LIMIT = 300


class Settings(BaseSettings):
    """Deployment settings; the YAML config (sources, feeds, endpoints) lives in :mod:`config.model`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    config_path: Path = Field(default=DEFAULT_CONFIG_PATH, validation_alias="SYNDICATE_CONFIG")
    var_dir: Path = Field(default=Path("var"), validation_alias="SYNDICATE_VAR_DIR")
    # Every render is also written here (atomically, plus .gz/.br) for a static web server in front.
    feed_dir: Path | None = Field(default=None, validation_alias="SYNDICATE_FEED_DIR")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    embedded_redis_port: int = Field(default=6379, validation_alias="SYNDICATE_REDIS_PORT")
    http_host: str = Field(default="127.0.0.1", validation_alias="SYNDICATE_HTTP_HOST")
    http_port: int = Field(default=8000, validation_alias="SYNDICATE_HTTP_PORT")
    public_url: str | None = Field(default=None, validation_alias="SYNDICATE_PUBLIC_URL")
    flower_port: int = Field(default=5555, validation_alias="SYNDICATE_FLOWER_PORT")
    # Flower listens on SYNDICATE_FLOWER_HOST (default: SYNDICATE_HTTP_HOST); on any address but
    # loopback it refuses to start without FLOWER_BASIC_AUTH ("user:password[,user2:password2]").
    flower_host: str | None = Field(default=None, validation_alias="SYNDICATE_FLOWER_HOST")
    flower_basic_auth: SecretStr | None = Field(default=None, validation_alias="FLOWER_BASIC_AUTH")
    visibility_timeout: int = Field(default=3600, ge=10, validation_alias="SYNDICATE_VISIBILITY_TIMEOUT")
    worker_concurrency: int = Field(default=2, ge=1, validation_alias="SYNDICATE_WORKER_CONCURRENCY")
    log_level: str = Field(default="INFO", validation_alias="SYNDICATE_LOG_LEVEL")
    # Seconds between a share's failed attempts, e.g. "1,2,4" (default: worker.outbox.retry.RETRY_SCHEDULE).
    # Shortened by the fault tests, which cannot wait out the production schedule.
    share_retry_schedule: Annotated[tuple[float, ...] | None, NoDecode] = Field(
        default=None, validation_alias="SYNDICATE_SHARE_RETRY_SCHEDULE"
    )

    @field_validator("share_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts:
                return None
            return tuple(parts)
        return value

    @field_validator("share_retry_schedule")
    @classmethod
    def _positive_schedule(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and any(wait <= 0 for wait in value):
            raise ValueError("every wait must be a positive number of seconds")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_password_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        for pair in value.get_secret_value().split(","):
            user, colon, password = pair.partition(":")
            if not (user and colon and password):
                raise ValueError("expected user:password (several separated by commas)")
        return value

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL: ``DATABASE_URL`` or the embedded SQLite file under the var dir."""
        if self.database_url:
            url = self.database_url
            # Heroku-style URLs name the scheme "postgres"; SQLAlchemy + psycopg 3 wants this form.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.var_dir / 'syndicate.db').resolve()}"

    @property
    def effective_redis_url(self) -> str:
        """``REDIS_URL`` or the embedded Redis server that ``syndicate up`` starts."""
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def task_time_limit(self) -> int:
        """The hard time limit of every task: below half the visibility timeout, or Redis redelivers it."""
        return min(TASK_TIME_LIMIT, self.visibility_timeout // 2)

    @property
    def effective_feed_dir(self) -> Path:
        """Where renders are exported: ``SYNDICATE_FEED_DIR`` or ``<var dir>/feeds``."""
        return self.feed_dir if self.feed_dir is not None else self.var_dir / "feeds"

    @property
    def base_url(self) -> str:
        """The public base URL of the HTTP app, used for feed self links (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.http_host}:{self.http_port}"


class SettingsError(Exception):
    """An environment variable holds a value Syndicate cannot use."""


def load_settings() -> Settings:
    """Build :class:`Settings` from the environment, turning validation errors into one readable line."""
    try:
        return Settings()
    except ValidationError as exc:
        aliases = {
            name: field.validation_alias
            for name, field in Settings.model_fields.items()
            if isinstance(field.validation_alias, str)
        }
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{aliases.get(field, field)}: {err['msg']}")
        raise SettingsError("invalid environment: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def environ_lookup(name: str) -> str | None:
    """Return one environment variable, for ``${VAR}`` references in the YAML config."""
    return os.environ.get(name)
