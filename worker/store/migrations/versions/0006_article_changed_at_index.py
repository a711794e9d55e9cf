"""index on articles.changed_at: the sweep's recent-change queries

The sweep (worker/ops/sweep.py) asks every 15 s which articles changed since a feed's last render and
which became ready in the last hour without share rows; both filter on ``changed_at`` and must not
scan the whole archive.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_articles_changed_at"), ["changed_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_changed_at"))
