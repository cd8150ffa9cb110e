"""The trace context across Kafka, against a real Kafka-protocol broker: the record
carries the event's traceparent as a header, and a consumer gets it back (from the
envelope, or from the header alone when another producer put it only there)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from paymesh.contracts.events import Event
from paymesh.platform.delivery import DeliveryPolicy
from paymesh.platform.kafka import KafkaBus, KafkaOptions

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _options(bootstrap: str) -> KafkaOptions:
    # Small timeouts: the first group join is slow otherwise.
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


async def _until(predicate, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def _first_record_headers(bootstrap: str, topic: str) -> dict[str, bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{secrets.token_hex(4)}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                return {k: v for k, v in (msg.headers() or [])}
        raise AssertionError("no record")
    finally:
        consumer.close()


async def test_a_published_event_carries_its_traceparent_in_the_envelope_and_a_header(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.{secrets.token_hex(4)}"
    bus = KafkaBus(_options(kafka_bootstrap))
    got: list[Event] = []

    async def handler(event: Event) -> None:
        got.append(event)

    bus.subscribe(topic, "g1", handler)
    await bus.start()
    try:
        await bus.publish(topic, dataclasses.replace(_event(1), traceparent=TRACEPARENT))
        await bus.publish(topic, _event(2))
        await _until(lambda: len(got) >= 2)
    finally:
        await bus.stop()
    assert [e.traceparent for e in got] == [TRACEPARENT, None]
    headers = await asyncio.to_thread(_first_record_headers, kafka_bootstrap, topic)
    assert headers["traceparent"] == TRACEPARENT.encode()
    assert headers["content-type"] == b"application/cloudevents+json"


async def test_a_record_with_the_traceparent_only_in_its_header_gives_the_consumer_it(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.{secrets.token_hex(4)}"
    bus = KafkaBus(_options(kafka_bootstrap))
    got: list[Event] = []

    async def handler(event: Event) -> None:
        got.append(event)

    bus.subscribe(topic, "g1", handler)
    await bus.start()
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(
            topic, value=_event(1).to_json(), headers=[("traceparent", TRACEPARENT.encode())]
        )
        assert await asyncio.to_thread(producer.flush, 30) == 0
        await _until(lambda: len(got) >= 1)
    finally:
        await bus.stop()
    assert got[0].traceparent == TRACEPARENT
    assert dataclasses.replace(got[0], traceparent=None) == _event(1)
