"""Alembic migrations, one history per service, run on the service's own engine.

Each service keeps ``migrations/`` (env.py, versions/) beside its store; its
env.py calls :func:`run_env`. :func:`upgrade` shares our async connection
with Alembic (the "connection sharing with asyncio" recipe).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from paymesh.platform.db import Database
from paymesh.platform.locks import lock_key

__all__ = ["migrate_database", "run_env", "upgrade"]


def _config(script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    """Bring the database of one service to `revision`."""
    cfg = _config(script_location)

    def _run(sync_conn: Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with db.transaction() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas of a service start together: the second waits for the first's
            # upgrade to commit, then finds nothing left to do.
            key = lock_key(f"migrate:{script_location.parent.name}")
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        await conn.run_sync(_run)


async def migrate_database(url: str, script_location: Path, *, service: str) -> None:
    """Bring the database at `url` of `service` to the latest schema, then close it."""
    db = Database(url, service=service)
    try:
        await upgrade(db, script_location)
    finally:
        await db.dispose()


def run_env(context: EnvironmentContext | ModuleType, target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    connection: Any = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `paymesh migrate`, which supplies the connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
