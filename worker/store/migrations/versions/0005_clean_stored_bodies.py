"""stored article bodies cleaned of controls and bidi overrides

Feed renders now trust a stored body (``content_is_clean``) to be free of what XML cannot carry, C1
controls and bidi overrides: the normalizer removes them since this revision. Bodies stored before
it are cleaned here once, in batches, so an old row cannot break a render or slip a "Trojan Source"
override into a feed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from feeds.content import clean_text

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500


def upgrade() -> None:
    """Clean every stored body that needs it (rows that are already clean are not written)."""
    bind = op.get_bind()
    articles = sa.table("articles", sa.column("id", sa.Integer), sa.column("content_html", sa.Text))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(articles.c.id, articles.c.content_html)
            .where(articles.c.id > last, articles.c.content_html.is_not(None))
            .order_by(articles.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row_id, body in rows:
            cleaned = clean_text(body)
            if cleaned != body:
                bind.execute(articles.update().where(articles.c.id == row_id).values(content_html=cleaned))
        last = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: the removed characters were never meant to be there."""
