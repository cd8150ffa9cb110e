"""PostgreSQL session-level advisory locks held on a connection of their own.

A lock of this kind lives exactly as long as the database session that took
it: a process that dies (even by SIGKILL) loses its connection and with it
every lock, at once. That makes them the platform's way to say "one of these
at a time" (the outbox relay's leader, the only risk replica on SQL velocity)
and "this process is alive" (a payments replica's saga leases).

SQLite is the embedded shape: one process, so every lock is always held.
"""

from __future__ import annotations

import contextlib
import hashlib
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.platform.db import Database
from paymesh.platform.logging import get_logger

__all__ = ["SessionLock", "lock_key"]

log = get_logger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    digest = hashlib.sha256(f"paymesh:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SessionLock:
    """One advisory lock: a 64-bit `key`, or a (`key`, `sub`) pair of 32-bit ints.

    The pair form shows in ``pg_locks`` as ``classid`` = key, ``objid`` = sub,
    ``objsubid`` = 2, which lets others ask which subs of a key are held.
    """

    def __init__(self, db: Database, key: int, sub: int | None = None) -> None:
        self._db = db
        self._key = key
        self._sub = sub
        self._conn: AsyncConnection | None = None
        # When this process last took the lock (monotonic seconds), None while not held.
        self.taken_at: float | None = None

    def _args(self) -> tuple[str, dict[str, int]]:
        if self._sub is None:
            return ":k", {"k": self._key}
        return ":k, :s", {"k": self._key, "s": self._sub}

    async def held(self) -> bool:
        """Whether this process holds the lock, taking it if free; always True on SQLite.

        A lock whose connection broke (the database restarted) is taken again.
        """
        if self._db.is_sqlite:
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                return True
            except Exception:
                log.warning("session_lock_lost", key=self._key, sub=self._sub)
                await self.release()
        args, params = self._args()
        conn = await self._db.engine.connect()
        try:
            got = (
                await conn.execute(sa.text(f"SELECT pg_try_advisory_lock({args})"), params)
            ).scalar_one()
            await conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        if got:
            self._conn = conn
            self.taken_at = time.monotonic()
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        """Give the lock up (if held)."""
        # A pooled connection outlives close(), and the lock lives with the
        # session: unlock explicitly, or throw the connection away.
        conn, self._conn = self._conn, None
        self.taken_at = None
        if conn is None:
            return
        args, params = self._args()
        try:
            await conn.execute(sa.text(f"SELECT pg_advisory_unlock({args})"), params)
            await conn.commit()
            await conn.close()
        except Exception:
            with contextlib.suppress(Exception):
                await conn.invalidate()
