"""Alembic environment of the webhooks service (run through `paymesh migrate`)."""

from typing import cast

from alembic import context
from alembic.runtime.environment import EnvironmentContext

from paymesh.platform.migrations import run_env
from paymesh.webhooks.tables import metadata

# `alembic.context` is a module that proxies the current EnvironmentContext.
run_env(cast(EnvironmentContext, context), metadata)
