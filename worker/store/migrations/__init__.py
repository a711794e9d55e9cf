"""Alembic migrations of the Syndicate schema."""
