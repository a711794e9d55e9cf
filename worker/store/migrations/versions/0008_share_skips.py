"""share_skips: which (article, endpoint) the planner did not share, and why

The back-catalogue rule and routing decided silently: a new source's first crawl was never posted
and ``status`` said ``sent 0, pending 0``. One row per skipped (article, endpoint) lets status count
skipped shares per endpoint and reason.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "share_skips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_share_skips_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_skips")),
        sa.UniqueConstraint("article_id", "endpoint", name="uq_share_skips_article_endpoint"),
    )
    with op.batch_alter_table("share_skips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_skips_endpoint"), ["endpoint"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("share_skips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_skips_endpoint"))
    op.drop_table("share_skips")
