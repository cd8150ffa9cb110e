"""Alembic environment of the payments service (run through ``paymesh migrate``)."""

from alembic import context

from paymesh.payments.flows import metadata
from paymesh.platform.migrations import run_env

run_env(context, metadata)
