"""Which failures mean "a dependency is down for now" rather than "a bug".

A database being restarted, a connection that broke, a Redis that does not
answer: a request that met one of these did nothing that a retry would
repeat (every paymesh write is one transaction, every call carries the
caller's id), so the edge answers it as unavailable (HTTP 503 with
Retry-After, gRPC UNAVAILABLE, which callers retry) instead of as an
internal error.
"""

from __future__ import annotations

import errno
import socket

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["is_unavailable"]

# SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown,
# cannot connect now), 53 insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_REDIS_UNAVAILABLE = {"ConnectionError", "TimeoutError", "BusyLoadingError"}


_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
# What SQLite and the drivers say, in their own words, when the database is busy or gone.
_UNAVAILABLE_WORDS = ("database is locked", "connection", "shutting down", "terminat")


def _one(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | PoolTimeout):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        message = str(exc.orig if exc.orig is not None else exc).lower()
        if any(word in message for word in _UNAVAILABLE_WORDS):
            return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    kind = type(exc)
    if kind.__module__.startswith("asyncpg") and kind.__name__ in {
        "ConnectionDoesNotExistError",
        "InterfaceError",
        "CannotConnectNowError",
    }:
        return True
    return kind.__module__.startswith("redis") and kind.__name__ in _REDIS_UNAVAILABLE


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from) says a dependency is down."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _one(current):
            return True
        orig = getattr(current, "orig", None)  # a SQLAlchemy error's driver exception
        if isinstance(orig, BaseException) and orig is not current and _one(orig):
            return True
        current = current.__cause__ or current.__context__
    return False
