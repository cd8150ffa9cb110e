"""The SQLite driver of the platform: one hand-off per statement, and SQLAlchemy sees
what it would see through plain aiosqlite (rows, counts, ids, errors, transactions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from paymesh.platform import sqlite
from paymesh.platform.db import Database

items = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
)


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db", service="test")
    async with database.engine.begin() as conn:
        await conn.run_sync(items.metadata.create_all)
    yield database
    await database.dispose()


async def test_rows_counts_and_ids_come_back_as_sqlalchemy_expects(db: Database) -> None:
    async with db.engine.begin() as conn:
        first = await conn.execute(items.insert().values(name="a"))
        assert first.inserted_primary_key == (1,)
        many = await conn.execute(items.insert(), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        changed = await conn.execute(
            items.update().where(items.c.id > 1).values(name=items.c.name + "!")
        )
        assert changed.rowcount == 2
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(items).order_by(items.c.id))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        one = (await conn.execute(sa.select(items.c.name).where(items.c.id == 2))).scalar_one()
        assert one == "b!"
        none = (await conn.execute(sa.select(items).where(items.c.id == 9))).first()
        assert none is None
        result = await conn.execute(sa.select(items.c.id).order_by(items.c.id))
        assert result.fetchmany(2) == [(1,), (2,)]
        assert result.fetchone() == (3,)
        assert result.fetchone() is None


async def test_a_constraint_error_is_sqlalchemys_and_rolls_the_transaction_back(
    db: Database,
) -> None:
    async def twice() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(items.insert().values(name="x"))
            await conn.execute(items.insert().values(name="x"))

    with pytest.raises(IntegrityError):
        await twice()
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(items))).scalar() == 0


async def test_the_database_is_durable_and_in_wal_mode(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(sa.text("PRAGMA synchronous"))).scalar() == 2  # FULL


async def test_a_statement_costs_one_hand_off(tmp_path: Path) -> None:
    connection = await sqlite.connect(str(tmp_path / "h.db"))
    handed: list[object] = []
    on_thread = connection.on_thread

    async def counting(fn: object) -> object:
        handed.append(fn)
        return await on_thread(fn)

    connection.on_thread = counting  # type: ignore[method-assign]
    try:
        cursor = connection.cursor()
        await cursor.execute("CREATE TABLE t (v INTEGER)")
        await cursor.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
        await cursor.execute("SELECT v FROM t ORDER BY v")
        assert await cursor.fetchall() == [(1,), (2,), (3,)]
        assert await cursor.fetchall() == []
        await cursor.close()
        assert len(handed) == 3
    finally:
        await connection.close()
