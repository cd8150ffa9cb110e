"""SQLite in the platform: a service's transactions run on the event loop's thread and
hand a thread only what may wait; the aiosqlite driver (migrations, long reads) costs one
hand-off per statement; SQLAlchemy sees what it would see through plain aiosqlite (rows,
counts, ids, errors, transactions)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from paymesh.platform import sqlite
from paymesh.platform.db import Database
from paymesh.platform.unavailable import is_unavailable

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


@contextmanager
def _threads_of_statements() -> Iterator[list[tuple[str, str]]]:
    """(thread name, statement or "COMMIT") of everything SQLAlchemy runs meanwhile."""
    seen: list[tuple[str, str]] = []

    def statement(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
        seen.append((threading.current_thread().name, sql.split()[0]))

    def commit(conn: Any) -> None:
        seen.append((threading.current_thread().name, "COMMIT"))

    sa.event.listen(sa.Engine, "before_cursor_execute", statement)
    sa.event.listen(sa.Engine, "commit", commit)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", statement)
        sa.event.remove(sa.Engine, "commit", commit)


async def test_a_transaction_runs_on_the_event_loops_thread_while_commits_are_quick(
    db: Database,
) -> None:
    loop_thread = threading.current_thread().name
    with _threads_of_statements() as seen:
        async with db.transaction() as conn:
            await conn.execute(items.insert().values(name="a"))
        async with db.read() as conn:
            assert (await conn.execute(sa.select(items.c.name))).scalars().all() == ["a"]
    assert [what for _, what in seen] == ["INSERT", "COMMIT", "BEGIN", "SELECT", "COMMIT"]
    assert {thread for thread, _ in seen} == {loop_thread}


async def test_slow_commits_are_made_on_a_thread(db: Database) -> None:
    loop_thread = threading.current_thread().name
    db.inline_commit_max_s = 0.0  # as if every fsync took long
    with _threads_of_statements() as seen:
        async with db.transaction() as conn:
            await conn.execute(items.insert().values(name="a"))
    assert [what for _, what in seen] == ["INSERT", "COMMIT"]
    assert seen[0][0] == loop_thread
    assert seen[1][0].startswith("sqlite-test")


# About half a second of SQLite's own work.
_SLOW = sa.text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
    "SELECT count(*) FROM c"
)


async def _ticks_during(read: Any) -> int:
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    ticks = 0
    async with read as conn:
        assert (await conn.execute(_SLOW)).scalar() == 2_000_000
    done = True
    await task
    return ticks


async def test_a_long_read_leaves_the_event_loop_free_a_short_one_holds_it(db: Database) -> None:
    assert await _ticks_during(db.read()) <= 2  # on the loop's thread: nothing else runs
    assert await _ticks_during(db.read(long=True)) >= 5  # on a thread: the loop goes on


@contextmanager
def _write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection to `path`, holding SQLite's write lock (``COMMIT``
    on it lets go)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.close()


async def _insert(db: Database, name: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(items.insert().values(name=name))


async def test_a_writer_behind_another_process_waits_off_the_event_loop(
    db: Database, tmp_path: Path
) -> None:
    with _write_locked(tmp_path / "t.db") as other:
        writer = asyncio.create_task(_insert(db, "late"))
        ticks = 0
        for _ in range(20):  # the loop keeps running, and reads too, while it waits
            await asyncio.sleep(0.01)
            async with db.read() as conn:
                await conn.execute(sa.select(items.c.id))
            ticks += 1
        assert ticks == 20
        assert not writer.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writer, 5)
    async with db.read() as conn:
        assert (await conn.execute(sa.select(items.c.name))).scalars().all() == ["late"]


async def test_a_writer_cancelled_while_waiting_leaves_the_database_usable(
    db: Database, tmp_path: Path
) -> None:
    with _write_locked(tmp_path / "t.db") as other:
        writer = asyncio.create_task(_insert(db, "never"))
        await asyncio.sleep(0.1)
        writer.cancel()
        other.execute("COMMIT")  # the waiting BEGIN gets the lock, then rolls back
        with pytest.raises(asyncio.CancelledError):
            await writer
    await _insert(db, "next")
    async with db.read() as conn:
        assert (await conn.execute(sa.select(items.c.name))).scalars().all() == ["next"]


async def test_a_long_write_leaves_the_event_loop_free(db: Database) -> None:
    async def slow_write() -> None:
        async with db.transaction(long=True) as conn:
            assert (await conn.execute(_SLOW)).scalar() == 2_000_000
            await conn.execute(items.insert().values(name="after"))

    ticks = 0
    writer = asyncio.create_task(slow_write())
    while not writer.done():
        await asyncio.sleep(0.01)
        ticks += 1
    await writer
    assert ticks >= 5
    async with db.read() as conn:
        assert (await conn.execute(sa.select(items.c.name))).scalars().all() == ["after"]


async def test_a_writer_kept_out_too_long_fails_as_an_unavailable_database(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/b.db", service="test", busy_timeout_ms=200)
    async with db.engine.begin() as conn:
        await conn.run_sync(items.metadata.create_all)
    try:
        with _write_locked(tmp_path / "b.db"), pytest.raises(sa.exc.OperationalError) as raised:
            await _insert(db, "never")
        assert is_unavailable(raised.value)  # retried by consumers, 503 at the edge
    finally:
        await db.dispose()


async def test_a_writer_cancelled_twice_while_waiting_leaves_no_lock_behind(
    db: Database, tmp_path: Path
) -> None:
    with _write_locked(tmp_path / "t.db") as other:
        writer = asyncio.create_task(_insert(db, "never"))
        await asyncio.sleep(0.1)
        writer.cancel()
        await asyncio.sleep(0.05)
        writer.cancel()  # again, while it still waits for its BEGIN
        await asyncio.sleep(0.05)
        assert not writer.done()  # it waits for the thread before giving its connection back
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await writer
    # No pooled connection kept the write lock: another process can write at once.
    again = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0)
    again.execute("BEGIN IMMEDIATE")
    again.execute("ROLLBACK")
    again.close()
    await _insert(db, "next")
    async with db.read() as conn:
        assert (await conn.execute(sa.select(items.c.name))).scalars().all() == ["next"]
