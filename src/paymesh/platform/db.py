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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

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

    def __init__(self, url: str, *, pool_size: int = 10, service: str = "unknown") -> None:
        parsed = make_url(url)
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
            _configure_sqlite(self.engine)
        else:
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
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        started = perf_counter()
        if self._write_lock is None:
            try:
                async with self.engine.begin() as conn:
                    yield conn
            finally:
                self._write_time.observe(perf_counter() - started)
            return
        assert self._lock_wait is not None
        locked: float | None = None
        async with self._write_lock:
            try:
                async with self.engine.begin() as conn:
                    # BEGIN IMMEDIATE has returned: this transaction holds the write lock.
                    locked = perf_counter()
                    self._lock_wait.observe(locked - started)
                    yield conn
            finally:  # after the commit (or rollback): its fsync is part of the time
                if locked is not None:
                    self._write_time.observe(perf_counter() - locked)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (on SQLite it takes no write lock)."""
        started = perf_counter()
        try:
            async with self._reader.connect() as conn, conn.begin():
                yield conn
        finally:
            self._read_time.observe(perf_counter() - started)

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
        await self.engine.dispose()
        if self._probe is not None:
            await self._probe.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
