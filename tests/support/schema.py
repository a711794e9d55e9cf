"""Does the migrated database match the models? Alembic's comparison, less what SQLite cannot reflect."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, ForeignKeyConstraint

from worker.store.models import Base


def schema_diff(conn: Connection) -> list[Any]:
    """What differs between the database behind ``conn`` and the models (``[]``: nothing)."""
    diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    return _named_alike(diff, conn)


def _named_alike(diff: list[Any], conn: Connection) -> list[Any]:
    """``diff`` less the foreign keys SQLite reflects without their names.

    SQLAlchemy reads neither the name nor ON DELETE of a column-level ``CONSTRAINT name REFERENCES``
    (0009 adds ``story_id`` columns that way, in place): those are compared here with what
    ``PRAGMA foreign_key_list`` says.
    """
    if conn.dialect.name != "sqlite":
        return diff

    def on_delete(fk: ForeignKeyConstraint) -> str:
        if fk.ondelete:
            return fk.ondelete.upper()
        rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({fk.table.name})").mappings()
        column = next(iter(fk.columns)).name
        return next(str(r["on_delete"]) for r in rows if r["from"] == column).upper()

    def shape(fk: ForeignKeyConstraint) -> tuple[Any, ...]:
        return (
            fk.table.name,
            tuple(c.name for c in fk.columns),
            fk.referred_table.name,
            tuple(e.column.name for e in fk.elements),
            on_delete(fk),
        )

    unnamed = {shape(d[1]) for d in diff if d[0] == "remove_fk" and d[1].name is None}
    named = {shape(d[1]) for d in diff if d[0] == "add_fk"}
    same = unnamed & named
    return [d for d in diff if not (d[0] in ("remove_fk", "add_fk") and shape(d[1]) in same)]
