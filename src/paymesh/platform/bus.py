"""Event bus adapters: the port every service publishes to and consumes from.

:class:`InProcessBus` is the embedded shape's bus: one queue per
(topic, consumer group), delivered at least once (a handler that raises gets
the event again after a pause). The Kafka adapter keeps the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from paymesh.contracts.events import Event
from paymesh.platform.logging import get_logger

__all__ = ["EventBus", "Handler", "InProcessBus"]

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    """Publish events to topics; deliver them to consumer groups."""

    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, topic: str, group: str, handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessBus:
    """An at-least-once bus inside one process."""

    def __init__(self, *, retry_delay_s: float = 0.2) -> None:
        self._groups: dict[str, list[tuple[str, asyncio.Queue[Event], Handler]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_delay_s = retry_delay_s
        self._started = False

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Deliver every event of `topic` to `handler`, once per group.

        After :meth:`start`, the new consumer starts at once (it receives the
        events published from now on).
        """
        self._groups.setdefault(topic, []).append((group, asyncio.Queue(), handler))
        if self._started:
            self._start_consumer(*self._groups[topic][-1])

    async def publish(self, topic: str, event: Event) -> None:
        """Queue `event` for every group subscribed to `topic`."""
        for _group, queue, _handler in self._groups.get(topic, []):
            queue.put_nowait(event)

    async def start(self) -> None:
        """Start one consumer task per subscription (and each one added later)."""
        if self._started:
            return
        self._started = True
        for subs in self._groups.values():
            for group, queue, handler in subs:
                self._start_consumer(group, queue, handler)

    def _start_consumer(self, group: str, queue: asyncio.Queue[Event], handler: Handler) -> None:
        self._tasks.append(asyncio.create_task(self._consume(group, queue, handler)))

    async def _consume(self, group: str, queue: asyncio.Queue[Event], handler: Handler) -> None:
        while True:
            event = await queue.get()
            while True:
                try:
                    await handler(event)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event_handler_failed", group=group, event_id=event.id)
                    await asyncio.sleep(self._retry_delay_s)

    async def stop(self) -> None:
        """Stop every consumer (events still queued are dropped; the outbox has them)."""
        self._started = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
