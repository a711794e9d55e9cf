"""stories: the same event reported by several partners, in several languages, is one story

Each ready article belongs to one story (``articles.story_id``, its ``story_role`` there). The
matcher's per-article features and candidate keys (``story_features``, ``story_keys``) let a new
article find the stories it may join without scanning the archive; ``story_splits`` records the
operator's corrections so a split article never rejoins. ``shares.story_id`` with a unique
(story, endpoint) makes "one post per story per endpoint" a rule the database keeps.

Existing ready articles each become a story of their own (their merged-feed entry keeps its id).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    """Create the story tables and columns, then give every ready article its own story."""
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("first_published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_key", sa.String(length=64), nullable=False),
        sa.Column("entry_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
        sa.UniqueConstraint("entry_key", name=op.f("uq_stories_entry_key")),
    )
    op.create_index(op.f("ix_stories_first_published"), "stories", ["first_published"])
    op.create_index(op.f("ix_stories_updated_at"), "stories", ["updated_at"])
    op.create_table(
        "story_features",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_story_features_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_story_features")),
    )
    op.create_table(
        "story_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_story_keys_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "day", "article_id", name=op.f("pk_story_keys")),
    )
    op.create_index("ix_story_keys_article_id", "story_keys", ["article_id"])
    op.create_table(
        "story_splits",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_story_splits_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name=op.f("fk_story_splits_story_id_stories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "story_id", name=op.f("pk_story_splits")),
    )
    # Plain ADD COLUMN, no batch mode: SQLite's batch mode rebuilds the table, and dropping the old
    # ``articles`` cascades to every row that references it (article terms, shares).
    _add_story_column("articles")
    op.add_column("articles", sa.Column("story_role", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_articles_story_id"), "articles", ["story_id"])
    _add_story_column("shares")
    op.create_index("uq_shares_story_endpoint", "shares", ["story_id", "endpoint"], unique=True)
    _one_story_per_ready_article()


def _add_story_column(table: str) -> None:
    """``table.story_id`` referencing ``stories`` (SET NULL), added in place on every backend."""
    name = f"fk_{table}_story_id_stories"
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its reference in place (alembic would want a table rebuild).
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN story_id INTEGER "
            f"CONSTRAINT {name} REFERENCES stories (id) ON DELETE SET NULL"
        )
        return
    op.add_column(table, sa.Column("story_id", sa.Integer(), nullable=True))
    op.create_foreign_key(name, table, "stories", ["story_id"], ["id"], ondelete="SET NULL")


def _day(value: object) -> date:
    """The UTC day of a stored timestamp (SQLite hands back strings, PostgreSQL datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return datetime.now(UTC).date()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).date()


def _one_story_per_ready_article() -> None:
    """Every ready article founds its own story, keyed by its own id (its merged-feed entry id)."""
    bind = op.get_bind()
    articles = sa.table(
        "articles",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("title", sa.Text),
        sa.column("published", sa.DateTime(timezone=True)),
        sa.column("first_seen_at", sa.DateTime(timezone=True)),
        sa.column("story_id", sa.Integer),
        sa.column("story_role", sa.String),
    )
    stories = sa.table(
        "stories",
        sa.column("id", sa.Integer),
        sa.column("title", sa.Text),
        sa.column("first_published", sa.DateTime(timezone=True)),
        sa.column("entry_key", sa.String),
        sa.column("entry_day", sa.Date),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    last = 0
    while True:
        rows = bind.execute(
            sa.select(articles.c.id, articles.c.title, articles.c.published, articles.c.first_seen_at)
            .where(articles.c.id > last, articles.c.status == "ready")
            .order_by(articles.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            stories.insert(),
            [
                {
                    "title": title,
                    "first_published": published,
                    "entry_key": f"articles/{row_id}",
                    "entry_day": _day(first_seen),
                    "created_at": now,
                    "updated_at": now,
                }
                for row_id, title, published, first_seen in rows
            ],
        )
        keys = {f"articles/{row[0]}" for row in rows}
        founded = bind.execute(
            sa.select(stories.c.id, stories.c.entry_key).where(stories.c.entry_key.in_(keys))
        )
        for story_id, entry_key in founded:
            bind.execute(
                articles.update()
                .where(articles.c.id == int(entry_key.removeprefix("articles/")))
                .values(story_id=story_id, story_role="main")
            )
        last = rows[-1][0]


def downgrade() -> None:
    """Drop the story tables and columns (articles and shares keep everything else)."""
    # Dropping a column is a table rebuild on SQLite: without foreign keys enforced, so that the
    # old table's drop cascades nowhere.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=OFF")
    op.drop_index("uq_shares_story_endpoint", table_name="shares")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_column("story_id")
    op.drop_index(op.f("ix_articles_story_id"), table_name="articles")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_column("story_role")
        batch_op.drop_column("story_id")
    if "ix_articles_dated" not in {i["name"] for i in sa.inspect(bind).get_indexes("articles")}:
        op.create_index(
            "ix_articles_dated", "articles", ["status", sa.text("coalesce(published, first_seen_at)"), "id"]
        )
    if bind.dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=ON")
    op.drop_table("story_splits")
    op.drop_index("ix_story_keys_article_id", table_name="story_keys")
    op.drop_table("story_keys")
    op.drop_table("story_features")
    op.drop_index(op.f("ix_stories_updated_at"), table_name="stories")
    op.drop_index(op.f("ix_stories_first_published"), table_name="stories")
    op.drop_table("stories")
