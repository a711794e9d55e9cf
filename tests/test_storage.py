"""What counts as a full disk: ENOSPC from a real device, EDQUOT, SQLite's SQLITE_FULL, anywhere in a chain.

The end-to-end behaviour (503 + Retry-After, health, status, metrics, nothing lost) is tested on a
real full filesystem in tests/integration/test_disk_full.py.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from config.settings import Settings
from worker.storage import describe, is_storage_full, storage_state, watched_paths


def _enospc() -> OSError:
    """The kernel's own ENOSPC: every write to /dev/full fails with it."""
    try:
        with open("/dev/full", "wb", buffering=0) as device:
            device.write(b"feed bytes")
    except OSError as exc:
        return exc
    raise AssertionError("/dev/full accepted a write")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_enospc_is_full_also_when_wrapped() -> None:
    exc = _enospc()
    assert exc.errno == errno.ENOSPC and is_storage_full(exc)
    try:
        try:
            raise exc
        except OSError as inner:
            raise RuntimeError("feed export failed") from inner
    except RuntimeError as outer:
        assert is_storage_full(outer)


def test_quota_exceeded_is_full_and_other_errors_are_not(tmp_path: Path) -> None:
    assert is_storage_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    with pytest.raises(OSError) as missing:
        (tmp_path / "no" / "such" / "dir" / "feed.rss").write_bytes(b"x")
    assert not is_storage_full(missing.value)
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(IntegrityError) as duplicate, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert not is_storage_full(duplicate.value)
    engine.dispose()


def test_sqlite_full_is_recognised_through_sqlalchemy(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL: a database capped at its current page count that must grow."""
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (body TEXT)"))
    with pytest.raises(OperationalError) as full, engine.begin() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar()
        connection.execute(text(f"PRAGMA max_page_count = {pages}"))
        connection.execute(text("INSERT INTO t VALUES (:body)"), {"body": "x" * 100_000})
    engine.dispose()
    assert isinstance(full.value.orig, sqlite3.OperationalError)
    assert is_storage_full(full.value)
    assert describe(full.value) == "database or disk is full"  # no SQL, no parameters


def test_default_settings_watch_var_and_the_default_database(tmp_path: Path) -> None:
    """No DATABASE_URL (the Quick start): the default SQLite file's directory, not a crash in /healthz."""
    settings = Settings(var_dir=tmp_path / "var", database_url=None)
    paths = watched_paths(settings)
    assert paths["var"] == tmp_path / "var"
    assert (
        paths["database"] == Path(make_url(settings.effective_database_url).database or "").resolve().parent
    )
    state = storage_state(settings)
    assert state["state"] == "ok" and set(state["free_bytes"]) == {"var", "database"}, state
