"""Alembic environment of the gateway's database."""

from alembic import context

from paymesh.gateway.tables import metadata
from paymesh.platform.migrations import run_env

run_env(context, metadata)
