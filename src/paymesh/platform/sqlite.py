"""SQLite for SQLAlchemy's asyncio engine with one thread hand-off per statement.

aiosqlite runs a connection on a thread of its own and hands it every call: making a
cursor, executing, fetching the rows and closing the cursor are four hand-offs (a queue
put, a thread wake-up, a future resolved through the event loop's self-pipe) for one
statement. Profiled under load, those hand-offs were the largest single cost of the
embedded platform (docs/performance.md).

:class:`OneHopConnection` is an aiosqlite connection whose cursors do the whole of a
statement (execute, read every row, close) in one hand-off and keep the result; what
SQLAlchemy asks next (``description``, ``rowcount``, ``fetchall()``) is answered from it
without another. SQLite is the same, so are transactions and durability (the commit is
still its own hand-off, with synchronous=FULL). Server-side (streaming) cursors are not
offered: paymesh reads no result too large to hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiosqlite

__all__ = ["OneHopConnection", "connect"]

_Result = tuple[Any, int, int | None, list[Any]]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """On the connection's thread: the statement, all its rows, its counts."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor:
    """An aiosqlite-compatible cursor: one hand-off per statement, rows kept here."""

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _do(self, operation: str, parameters: Any, many: bool) -> OneHopCursor:
        run = partial(_run, self._connection.sqlite, operation, parameters, many)
        (
            self.description,
            self.rowcount,
            self.lastrowid,
            self._rows,
        ) = await self._connection.on_thread(run)
        return self

    async def execute(self, operation: str, parameters: Any = None) -> OneHopCursor:
        """Run `operation` and keep all its rows."""
        return await self._do(operation, parameters, many=False)

    async def executemany(self, operation: str, parameters: Sequence[Any]) -> OneHopCursor:
        """Run `operation` once per parameter set."""
        return await self._do(operation, parameters, many=True)

    async def fetchall(self) -> list[Any]:
        """Every row not read yet."""
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """The next `size` rows (`arraysize` by default)."""
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        """Forget the rows (the SQLite cursor was closed with its statement)."""
        self._rows = []


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors cost one hand-off per statement."""

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection (use it only on the connection's thread)."""
        return self._conn

    async def on_thread(self, fn: Any) -> Any:
        """Run `fn()` on the connection's thread."""
        return await self._execute(fn)  # type: ignore[no-untyped-call]

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)


async def connect(database: str, **kwargs: Any) -> OneHopConnection:
    """Open `database` (sqlite3.connect's arguments) on a thread of its own."""
    connection = OneHopConnection(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True
    await connection
    return connection
