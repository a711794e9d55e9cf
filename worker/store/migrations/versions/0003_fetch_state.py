"""fetch validators per URL, source back-off and crawl cursor, article hints

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "fetch_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("lastmod", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_fetch_states_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fetch_states")),
        sa.UniqueConstraint("url", name=op.f("uq_fetch_states_url")),
    )
    with op.batch_alter_table("fetch_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fetch_states_source_id"), ["source_id"], unique=False)
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consecutive_errors", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_crawl_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cursor", sa.JSON(), nullable=True))
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hints", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_column("hints")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("cursor")
        batch_op.drop_column("next_crawl_at")
        batch_op.drop_column("failing_since")
        batch_op.drop_column("consecutive_errors")
    with op.batch_alter_table("fetch_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fetch_states_source_id"))
    op.drop_table("fetch_states")
