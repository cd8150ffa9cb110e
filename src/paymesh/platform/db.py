"""Async SQLAlchemy Core engines for SQLite (embedded) and PostgreSQL (distributed).

SQLite notes: a write transaction starts with ``BEGIN IMMEDIATE`` so that two
writers never both read and then fail to upgrade their lock (a deadlock that
SQLite answers with SQLITE_BUSY at commit); reads start ``BEGIN DEFERRED``.
SQLite has one writer at a time, and a writer that finds the lock taken
sleeps in SQLite's busy handler in growing steps (up to 100 ms), so the
writers of one process queue on an asyncio lock instead: first come, first
served, no sleeping. The time a writer waits for that lock (and SQLite's
``BEGIN IMMEDIATE``) is measured on its own, apart from the transaction's.
WAL lets readers run beside the single writer; ``synchronous=FULL`` keeps a
committed transfer durable across a power cut, not only a process crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from paymesh.platform import sqlite
from paymesh.platform.metrics import DB_SQLITE_WRITE_LOCK_WAIT, DB_TRANSACTION_DURATION

__all__ = ["Database"]

_READ_ONLY = "paymesh_read_only"
_SELECT_1 = text("SELECT 1")


class Database:
    """A service's database: one engine, write and read transactions.

    `service` names the service in the metrics of its transactions
    (``paymesh_db_transaction_duration_seconds{service, kind}``).
    """

    # A SQLite commit is made on the event loop's thread while commits take less than
    # this on average (see _commit).
    inline_commit_max_s = 0.001

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        service: str = "unknown",
        busy_timeout_ms: int = 30_000,
    ) -> None:
        """`busy_timeout_ms`: on SQLite, how long a writer waits for another process's
        write lock (in SQLite's busy handler, off the event loop) before it fails."""
        parsed = make_url(url)
        self._busy_timeout_ms = busy_timeout_ms
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # One thread hand-off per statement, not four (platform/sqlite.py).
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                async_creator=partial(sqlite.connect, parsed.database or ":memory:", timeout=30),
            )
            _configure_sqlite(self.engine.sync_engine, busy_timeout_ms)
            # The transactions of the service's own work: statements on the event
            # loop's thread (see InlineConnection); a queue that never blocks the loop.
            self._inline: Engine | None = create_engine(
                "sqlite://",
                creator=partial(_sqlite_connect, parsed.database or ":memory:"),
                poolclass=QueuePool,
                pool_size=pool_size,
                max_overflow=-1,
            )
            _configure_sqlite(self._inline, busy_timeout_ms)
            # What may wait (BEGIN IMMEDIATE behind another process, a commit's fsync)
            # waits here, one at a time like the writers themselves.
            self._waits = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-{service}")
            self._commit_s = 0.0
        else:
            self._inline = None
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._probe: AsyncEngine | None = None  # see ping()
        self.service = service
        self._write_time = DB_TRANSACTION_DURATION.labels(service, "write")
        self._read_time = DB_TRANSACTION_DURATION.labels(service, "read")
        self._lock_wait = DB_SQLITE_WRITE_LOCK_WAIT.labels(service) if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded shape's SQLite."""
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, long: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error.

        On SQLite its statements run on the event loop's thread (see
        :class:`InlineConnection`); a `long` one (e.g. a purge of many rows) runs them on
        the waiting thread, so the loop goes on serving meanwhile.
        """
        started = perf_counter()
        if self._inline is None:
            try:
                async with self.engine.begin() as conn:
                    yield conn
            finally:
                self._write_time.observe(perf_counter() - started)
            return
        assert self._lock_wait is not None
        assert self._write_lock is not None
        locked: float | None = None
        await asyncio.sleep(0)  # statements that never wait must not starve the loop
        async with self._write_lock:
            sync = self._inline.connect()
            try:
                await self._begin_immediate(sync)
                locked = perf_counter()
                self._lock_wait.observe(locked - started)
                sync.begin()  # SQLAlchemy's side of the transaction begun above
                yield InlineConnection(self.engine, sync, self._wait if long else None)
                await self._commit(sync)
            except BaseException:
                sync.rollback()
                raise
            finally:
                sync.close()
                if locked is not None:  # the commit's fsync is part of the time
                    self._write_time.observe(perf_counter() - locked)

    @asynccontextmanager
    async def read(self, *, long: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (on SQLite it takes no write lock).

        On SQLite a read's statements run on the event loop's thread (see
        :class:`InlineConnection`); a `long` one (a scan of whole tables, e.g. the ledger
        audit) runs each statement on a thread instead, so the loop goes on serving.
        """
        started = perf_counter()
        try:
            if self._inline is None or long:
                async with self._reader.connect() as conn, conn.begin():
                    yield conn
                return
            await asyncio.sleep(0)  # statements that never wait must not starve the loop
            sync = self._inline.execution_options(**{_READ_ONLY: True}).connect()
            try:
                with sync.begin():  # BEGIN DEFERRED: in WAL mode a read never waits
                    yield InlineConnection(self.engine, sync)
            finally:
                sync.close()
        finally:
            self._read_time.observe(perf_counter() - started)

    async def _begin_immediate(self, sync: Connection) -> None:
        """``BEGIN IMMEDIATE`` at once when the write lock is free (it is, unless another
        process holds it); else on the waiting thread, in SQLite's busy handler."""
        raw: Any = sync.connection.driver_connection  # the sqlite3.Connection
        raw.execute("PRAGMA busy_timeout=0")
        try:
            _begin_immediate(raw)
            return
        except OperationalError as exc:
            if _sqlite_code(exc) != sqlite3.SQLITE_BUSY:
                raise
        finally:
            raw.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        await self._wait(partial(_begin_immediate, raw))

    async def _commit(self, sync: Connection) -> None:
        """Commit a write: at once while commits are quick (an fsync on this disk takes
        less than handing it to a thread and back), else on the waiting thread."""

        def commit() -> float:
            started = perf_counter()
            sync.commit()
            return perf_counter() - started

        if self._commit_s < self.inline_commit_max_s:
            took = commit()
        else:
            took = await self._wait(commit)
        # A moving average of the last few commits' own durations (hand-off not counted).
        self._commit_s += (took - self._commit_s) / 8

    async def _wait(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the SQLite waiting thread; a cancelled caller still waits for it
        (the connection is not the caller's to use again before it returns)."""
        future = asyncio.get_running_loop().run_in_executor(self._waits, fn)
        cancelled = False
        while not future.done():  # however often the caller is cancelled meanwhile
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                cancelled = True
            except Exception:  # noqa: S110 - fn's own error: raised by result() below
                pass
        if cancelled:
            raise asyncio.CancelledError
        return future.result()

    async def ping(self) -> None:
        """Raise unless the database answers ``SELECT 1`` on a new connection (PostgreSQL)
        or a pooled one (SQLite, a file of this process). Bound it with a timeout."""
        engine: AsyncEngine = self._reader  # on SQLite: BEGIN DEFERRED, no write lock
        if not self.is_sqlite:
            # A connection of its own each time, never a pooled one that still works
            # while the database refuses new ones (or is gone for everyone else).
            if self._probe is None:
                self._probe = create_async_engine(self.url, poolclass=NullPool)
            engine = self._probe
        async with engine.connect() as conn:
            await conn.execute(_SELECT_1)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._inline is not None:
            self._inline.dispose()
            self._waits.shutdown(wait=False)
        await self.engine.dispose()
        if self._probe is not None:
            await self._probe.dispose()


class InlineConnection(AsyncConnection):
    """An AsyncConnection over a plain sqlite3 connection whose statements run at once,
    on the event loop's thread.

    A SQLite statement on a local file takes microseconds; handing each to a thread
    (aiosqlite) and back cost far more than the statement, and SQLAlchemy's async
    bridge (a greenlet per call) as much again (docs/performance.md). What may wait is
    kept off the loop by :meth:`Database.transaction`: ``BEGIN IMMEDIATE`` and the
    commit of a write run on a thread. Reads never wait in WAL mode.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        sync: Connection,
        offload: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__(engine, sync)
        self._sync = sync
        self._offload = offload  # a long transaction's statements: on this thread

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return fn() if self._offload is None else await self._offload(fn)

    async def execute(
        self, statement: Any, parameters: Any = None, *, execution_options: Any = None
    ) -> Any:
        sync = self._sync
        return await self._run(
            partial(sync.execute, statement, parameters, execution_options=execution_options)
        )

    async def scalar(
        self, statement: Any, parameters: Any = None, *, execution_options: Any = None
    ) -> Any:
        sync = self._sync
        return await self._run(
            partial(sync.scalar, statement, parameters, execution_options=execution_options)
        )

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> Any:
        return await self._run(
            partial(self._sync.exec_driver_sql, statement, parameters, execution_options)
        )


def _begin_immediate(raw: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, its error as SQLAlchemy's (what the rest of the platform
    knows: "database is locked" is an unavailable database, retried)."""
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def _sqlite_code(exc: OperationalError) -> int:
    """The primary SQLite result code behind `exc` (-1 when there is none)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return -1 if code is None else int(code) & 0xFF


def _sqlite_connect(database: str) -> sqlite3.Connection:
    # Used from the event loop's thread and the waiting thread, never both at once.
    return sqlite3.connect(database, timeout=30, check_same_thread=False)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.connection.driver_connection.in_transaction:
            return  # begun by Database.transaction (BEGIN IMMEDIATE)
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
