"""In-process locks on velocity windows, for the SQL features (see :class:`VelocityLocks`)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterable

__all__ = ["VelocityLocks"]


class VelocityLocks:
    """Serialise, in this process, the decisions that share a velocity window.

    With SQL features a decision reads its windows, then records itself in the
    decision's write: two decisions for one payer at the same instant could
    both read "2 of 3" and both pass. The embedded shape is one process, so a
    lock per window key (taken in sorted order, so two decisions never wait on
    each other crosswise) makes read-then-record atomic there. Redis does the
    check and the add in one script instead and needs none of this. Locks live
    only while someone holds or awaits them (a weak dictionary).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the lock of every key until the block ends."""
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                lock = self._locks.get(key)
                if lock is None:
                    lock = asyncio.Lock()
                    self._locks[key] = lock
                # The stack keeps a reference to the lock, so it stays in the dict.
                await stack.enter_async_context(lock)
            yield
