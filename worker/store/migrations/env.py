"""Alembic environment: runs migrations online against the URL put in the config by ``store.db``."""

from __future__ import annotations

from alembic import context

from worker.store.db import make_engine
from worker.store.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations in one transaction per the configured URL."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `syndicate migrate`")
run_migrations_online()
