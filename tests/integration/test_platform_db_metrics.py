"""Database transactions timed by service and kind, SQLite's write-lock wait apart, and the
readiness ping that notices a database gone even while a pooled connection still works."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from paymesh.platform.db import Database
from tests.conftest import PG_ADMIN

TX = "paymesh_db_transaction_duration_seconds"
LOCK_WAIT = "paymesh_db_sqlite_write_lock_wait_seconds"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_transactions_are_timed_by_service_and_kind_rolled_back_ones_too(
    db_url: str,
) -> None:
    service = f"svc{secrets.token_hex(3)}"
    db = Database(db_url, service=service)
    try:
        async with db.transaction() as conn:
            await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
        try:
            async with db.transaction() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT count(*) FROM t"))
    finally:
        await db.dispose()
    assert sample(f"{TX}_count", service=service, kind="write") == 2
    assert sample(f"{TX}_count", service=service, kind="read") == 1
    assert sample(f"{TX}_sum", service=service, kind="write") > 0
    waits = sample(f"{LOCK_WAIT}_count", service=service)
    assert waits == (2 if db.is_sqlite else 0)  # PostgreSQL has no database-wide write lock


async def test_a_sqlite_writer_waiting_for_another_counts_the_wait_apart_from_its_transaction(
    sqlite_url: str,
) -> None:
    service = f"svc{secrets.token_hex(3)}"
    db = Database(sqlite_url, service=service)
    first_holds = asyncio.Event()

    async def first() -> None:
        async with db.transaction() as conn:
            await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
            first_holds.set()
            await asyncio.sleep(0.3)

    async def second() -> None:
        await first_holds.wait()
        async with db.transaction() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))

    try:
        await asyncio.gather(first(), second())
    finally:
        await db.dispose()
    # The second waited about as long as the first held the lock; neither's own
    # transaction time includes that wait.
    assert sample(f"{LOCK_WAIT}_sum", service=service) >= 0.25
    assert sample(f"{TX}_count", service=service, kind="write") == 2
    assert sample(f"{TX}_sum", service=service, kind="write") < 0.3 + 0.25


async def test_the_ping_of_sqlite_takes_no_write_lock(sqlite_url: str) -> None:
    db = Database(sqlite_url, service=f"svc{secrets.token_hex(3)}")
    try:
        async with db.transaction() as conn:  # a writer holds the lock meanwhile
            await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
            await asyncio.wait_for(db.ping(), timeout=2)
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_the_ping_fails_once_the_database_refuses_new_connections_though_the_pool_works(
    pg_url: str,
) -> None:
    name = make_url(pg_url).database
    db = Database(pg_url, service=f"svc{secrets.token_hex(3)}")
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await db.ping()
        async with db.read() as conn:  # a pooled connection, open from before
            await conn.execute(sa.text("SELECT 1"))
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        async with db.read() as conn:  # still works: its session was open already
            await conn.execute(sa.text("SELECT 1"))
        with pytest.raises(Exception, match="not currently accepting connections"):
            await asyncio.wait_for(db.ping(), timeout=5)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await db.ping()
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await db.dispose()
