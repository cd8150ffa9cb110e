"""The in-process bus's metrics: events handled, handler errors and the lag per group and topic."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from paymesh.contracts.events import Event
from paymesh.platform.bus import InProcessBus


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


def _sample(name: str, group: str, topic: str, service: str = "svc") -> float:
    labels = {"service": service, "group": group, "topic": topic}
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_lag_counts_undelivered_events_and_handled_counts_each_once() -> None:
    bus = InProcessBus()
    gate = asyncio.Event()
    seen: list[str] = []

    async def handler(event: Event) -> None:
        await gate.wait()
        seen.append(event.id)

    bus.subscribe("t.lag", "g-lag", handler, service="svc")
    handled = _sample("paymesh_events_handled_total", "g-lag", "t.lag")
    await bus.start()
    try:
        for n in range(3):
            await bus.publish("t.lag", _event(n))
        await asyncio.sleep(0.05)  # the consumer holds the first; two wait behind it
        assert _sample("paymesh_event_consumer_lag", "g-lag", "t.lag") == 3
        gate.set()
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
        assert seen == ["evt_0", "evt_1", "evt_2"]
        assert _sample("paymesh_event_consumer_lag", "g-lag", "t.lag") == 0
        assert _sample("paymesh_events_handled_total", "g-lag", "t.lag") == handled + 3
    finally:
        await bus.stop()


async def test_every_failed_attempt_is_a_handler_error_and_the_success_is_handled_once() -> None:
    bus = InProcessBus(retry_delay_s=0.01)
    attempts = 0

    async def flaky(event: Event) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("not yet")

    bus.subscribe("t.err", "g-err", flaky, service="svc")
    errors = _sample("paymesh_event_handler_errors_total", "g-err", "t.err")
    handled = _sample("paymesh_events_handled_total", "g-err", "t.err")
    await bus.start()
    try:
        await bus.publish("t.err", _event(1))
        for _ in range(200):
            if _sample("paymesh_events_handled_total", "g-err", "t.err") > handled:
                break
            await asyncio.sleep(0.01)
    finally:
        await bus.stop()
    assert _sample("paymesh_event_handler_errors_total", "g-err", "t.err") == errors + 2
    assert _sample("paymesh_events_handled_total", "g-err", "t.err") == handled + 1


async def test_a_group_subscribed_without_a_service_is_labelled_with_its_own_name() -> None:
    bus = InProcessBus()

    async def handler(event: Event) -> None:
        return None

    bus.subscribe("t.own", "g-own", handler)
    handled = _sample("paymesh_events_handled_total", "g-own", "t.own", service="g-own")
    await bus.start()
    try:
        await bus.publish("t.own", _event(1))
        for _ in range(100):
            if _sample("paymesh_events_handled_total", "g-own", "t.own", "g-own") > handled:
                break
            await asyncio.sleep(0.01)
    finally:
        await bus.stop()
    assert _sample("paymesh_events_handled_total", "g-own", "t.own", "g-own") == handled + 1
