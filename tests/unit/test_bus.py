"""The in-process bus: every subscription is consumed, whether made before or after start."""

from __future__ import annotations

import asyncio

from paymesh.contracts.events import Event
from paymesh.platform.bus import InProcessBus


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


class Inbox:
    """A handler that remembers event ids and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        async with self._arrived:
            self.ids.append(event.id)
            self._arrived.notify_all()

    async def wait_for(self, count: int) -> list[str]:
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.ids) >= count)
        return self.ids


async def test_a_lone_subscriber_added_after_start_receives_events() -> None:
    bus = InProcessBus()
    await bus.start()
    inbox = Inbox()
    try:
        bus.subscribe("payments", "late", inbox)
        await bus.publish("payments", _event(1))
        assert await asyncio.wait_for(inbox.wait_for(1), 10) == ["evt_1"]
    finally:
        await bus.stop()


async def test_subscribers_before_and_after_start_each_receive_every_event() -> None:
    bus = InProcessBus()
    early, late = Inbox(), Inbox()
    bus.subscribe("payments", "early", early)
    await bus.start()
    try:
        bus.subscribe("payments", "late", late)
        for n in range(3):
            await bus.publish("payments", _event(n))
        assert await asyncio.wait_for(late.wait_for(3), 10) == ["evt_0", "evt_1", "evt_2"]
        assert await asyncio.wait_for(early.wait_for(3), 10) == ["evt_0", "evt_1", "evt_2"]
    finally:
        await bus.stop()


async def test_a_subscription_after_stop_waits_for_the_next_start() -> None:
    bus = InProcessBus()
    await bus.start()
    await bus.stop()
    inbox = Inbox()
    bus.subscribe("payments", "g", inbox)
    await bus.start()
    try:
        await bus.publish("payments", _event(1))
        assert await asyncio.wait_for(inbox.wait_for(1), 10) == ["evt_1"]
    finally:
        await bus.stop()
