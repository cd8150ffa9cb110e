"""Alembic revisions of the accounts database."""
