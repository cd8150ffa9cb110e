"""The Kafka bus's metrics against a real broker: the consumer lag from the watermarks,
events handled and handler errors per group and topic, labelled with the group's service."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from prometheus_client import REGISTRY

from paymesh.contracts.events import Event
from paymesh.platform.delivery import DeliveryPolicy
from paymesh.platform.kafka import KafkaBus, KafkaOptions


def _options(bootstrap: str) -> KafkaOptions:
    return KafkaOptions(
        bootstrap_servers=bootstrap,
        session_timeout_ms=6_000,
        max_poll_interval_ms=10_000,
        retry_delay_s=0.05,
        policy=DeliveryPolicy(backoff_s=0.05, backoff_max_s=0.2),
    )


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


async def _until(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_the_lag_rises_while_a_handler_is_stuck_and_falls_once_it_catches_up(
    kafka_bootstrap: str,
) -> None:
    topic, group = f"test.{secrets.token_hex(4)}", f"g-{secrets.token_hex(3)}"
    labels = {"service": "svc-k", "group": group, "topic": topic}

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    gate = asyncio.Event()
    seen: list[str] = []
    failed = False

    async def handler(event: Event) -> None:
        nonlocal failed
        await gate.wait()
        if not failed:  # the first attempt fails once: an error, then handled
            failed = True
            raise RuntimeError("once")
        seen.append(event.id)

    bus = KafkaBus(_options(kafka_bootstrap))
    bus.subscribe(topic, group, handler, service="svc-k")
    await bus.start()
    try:
        for n in range(4):  # one key: one partition
            await bus.publish(topic, _event(n))
        # The consumer holds the first record: all four are behind its position.
        await _until(lambda: sample("paymesh_event_consumer_lag") >= 3)
        gate.set()
        await _until(lambda: len(seen) == 4)
        await _until(lambda: sample("paymesh_event_consumer_lag") == 0)
    finally:
        await bus.stop()
    assert sample("paymesh_events_handled_total") == 4
    assert sample("paymesh_event_handler_errors_total") == 1
