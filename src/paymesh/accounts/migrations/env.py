"""Alembic environment of the accounts service (run through `paymesh migrate`)."""

from typing import cast

from alembic import context
from alembic.runtime.environment import EnvironmentContext

from paymesh.accounts.tables import metadata
from paymesh.platform.migrations import run_env

# `alembic.context` is a module that proxies the current EnvironmentContext.
run_env(cast(EnvironmentContext, context), metadata)
