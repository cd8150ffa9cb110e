"""Background work, written once: a named task that starts, repeats and stops.

Every service runs something in the background (a sweeper, a resumer, a relay, a
worker). Each of them is one of two things:

- `Background`: tasks this object started and must cancel, and wait for, on stop;
- `Periodic`: a step run every `interval_s` seconds until stopped, a failing step
  logged and retried at the next tick, never ending the loop.

`stop()` is idempotent and never raises the cancellation it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended; its cancellation is not re-raised."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Background:
    """The tasks one component runs in the background; `stop()` ends all of them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        """Whether any task started here has not ended yet."""
        return any(not task.done() for task in self._tasks)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run `coro` in the background until it ends or `stop()` is called."""
        task = asyncio.create_task(coro, name=name or self.name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, grace_s: float) -> None:
        """Give the running tasks `grace_s` seconds to end by themselves."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Wait up to `grace_s` for the tasks to end, then cancel what is left and wait."""
        if grace_s > 0:
            await self.drain(grace_s)
        for task in list(self._tasks):
            await cancel_and_wait(task)
        self._tasks.clear()


class Periodic:
    """Runs `step` now and then every `interval_s` seconds, until stopped.

    A step that raises is logged (`<name>_failed`) and the loop goes on; `wake()`
    runs the next step at once instead of at the end of the interval. With
    `wait_first`, the first step comes after one interval (for an owner that has
    just run it itself).
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        *,
        interval_s: float,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self._step = step
        self.interval_s = interval_s
        self._wait_first = wait_first
        self._wake = asyncio.Event()
        self._background = Background(name)

    @property
    def running(self) -> bool:
        """Whether the loop is running."""
        return self._background.running

    def wake(self) -> None:
        """Run the next step now rather than at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        """Step until cancelled."""
        if self._wait_first:
            await self._pause()
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(f"{self.name.replace('-', '_')}_failed")
            await self._pause()

    async def _pause(self) -> None:
        """Wait out the interval, or less if woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
        self._wake.clear()

    def start(self) -> None:
        """Start the loop in the background (once; a second call does nothing)."""
        if not self.running:
            self._background.spawn(self.run())

    async def stop(self) -> None:
        """Stop the loop, waiting for a step in progress to be cancelled."""
        await self._background.stop()
