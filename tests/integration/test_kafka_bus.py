"""The Kafka bus against a real Kafka-protocol broker: keyed, acknowledged, at-least-once."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import sqlalchemy as sa
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from paymesh.contracts.events import Event
from paymesh.platform.db import Database
from paymesh.platform.delivery import DeliveryPolicy
from paymesh.platform.kafka import KafkaBus, KafkaOptions
from paymesh.platform.outbox import OutboxRelay, append, first_delivery, inbox_table, outbox_table
from tests.conftest import free_port


def _options(bootstrap: str) -> KafkaOptions:
    # Small timeouts: the first group join is slow otherwise.
    return KafkaOptions(
        bootstrap_servers=bootstrap,
        session_timeout_ms=6_000,
        max_poll_interval_ms=10_000,
        retry_delay_s=0.05,
        policy=DeliveryPolicy(backoff_s=0.05, backoff_max_s=0.2),
    )


def _event(n: int, subject: str = "pay_1") -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject=subject,
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


async def _until(predicate, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_published_events_reach_a_consumer_group_in_key_order(kafka_bootstrap: str) -> None:
    topic = f"test.{secrets.token_hex(4)}"
    bus = KafkaBus(_options(kafka_bootstrap))
    got: list[str] = []

    async def handler(event: Event) -> None:
        got.append(event.id)

    bus.subscribe(topic, "g1", handler)
    await bus.start()
    try:
        for n in range(5):
            await bus.publish(topic, _event(n))
        await _until(lambda: len(got) >= 5)
    finally:
        await bus.stop()
    assert got == [f"evt_{n}" for n in range(5)]


async def test_a_failing_handler_gets_the_event_again_and_the_inbox_applies_it_once(
    kafka_bootstrap: str, sqlite_url: str
) -> None:
    topic = f"test.{secrets.token_hex(4)}"
    db = Database(sqlite_url)
    md = sa.MetaData()
    outbox, inbox = outbox_table(md), inbox_table(md)
    effects = sa.Table("effects", md, sa.Column("event_id", sa.String, primary_key=True))
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)

    calls = 0

    async def handler(event: Event) -> None:
        nonlocal calls
        calls += 1
        async with db.transaction() as conn:
            if await first_delivery(conn, inbox, "test", event.id, 0):
                await conn.execute(effects.insert().values(event_id=event.id))
        if calls == 1:
            raise RuntimeError("crash after the effect, before the offset commit")

    bus = KafkaBus(_options(kafka_bootstrap))
    bus.subscribe(topic, "g2", handler)
    await bus.start()
    try:
        # Publish through the outbox, twice over (a relay crash between
        # publish and mark republishes): the inbox absorbs both duplicates.
        async with db.transaction() as conn:
            await append(conn, outbox, topic, _event(1, "pay_a"))
        relay = OutboxRelay(db, outbox, bus, service="test")
        assert await relay.relay_once() == 1
        await bus.publish(topic, _event(1, "pay_a"))
        await _until(lambda: calls >= 3)
    finally:
        await bus.stop()
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(effects.c.event_id))).scalars().all()
    await db.dispose()
    assert rows == ["evt_1"]


def _topics(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return set(admin.list_topics(timeout=10).topics)


async def test_a_subscription_added_after_start_creates_its_topic_and_receives_events(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.{secrets.token_hex(4)}"
    bus = KafkaBus(_options(kafka_bootstrap))
    got: list[str] = []

    async def handler(event: Event) -> None:
        got.append(event.id)

    await bus.start()  # nothing subscribed yet: no topic made at start
    try:
        bus.subscribe(topic, "late", handler)
        # The consumer makes its topic before polling, with nothing published to it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while topic not in await asyncio.to_thread(_topics, kafka_bootstrap):
            assert loop.time() < deadline, f"topic {topic} was never created"
            await asyncio.sleep(0.1)
        for n in range(3):
            await bus.publish(topic, _event(n))
        await _until(lambda: len(got) >= 3)
    finally:
        await bus.stop()
    assert got == [f"evt_{n}" for n in range(3)]


async def test_one_group_reading_two_topics_is_one_consumer_that_gets_both(
    kafka_bootstrap: str,
) -> None:
    # As the webhooks service does: one group, two topics, one handler each.
    first, second = f"test.{secrets.token_hex(4)}", f"test.{secrets.token_hex(4)}"
    group = f"g-{secrets.token_hex(4)}"
    bus = KafkaBus(_options(kafka_bootstrap))
    got: dict[str, list[str]] = {first: [], second: []}

    async def on_first(event: Event) -> None:
        got[first].append(event.id)

    async def on_second(event: Event) -> None:
        got[second].append(event.id)

    bus.subscribe(first, group, on_first)
    bus.subscribe(second, group, on_second)
    await bus.start()
    try:
        assert len(bus._consumers) == 1  # one member of the group, not one per topic
        for n in range(3):
            await bus.publish(first, _event(n))
            await bus.publish(second, _event(10 + n))
        await _until(lambda: len(got[first]) >= 3 and len(got[second]) >= 3)
        # A running group cannot grow a topic: its consumer would have to rejoin.
        with pytest.raises(RuntimeError, match="subscribe before start"):
            bus.subscribe(f"test.{secrets.token_hex(4)}", group, on_first)
    finally:
        await bus.stop()
    assert got == {first: ["evt_0", "evt_1", "evt_2"], second: ["evt_10", "evt_11", "evt_12"]}


async def test_installations_in_other_namespaces_share_a_broker_without_seeing_each_other(
    kafka_bootstrap: str,
) -> None:
    topic, group = f"test.{secrets.token_hex(4)}", "same-group"
    got: dict[str, list[str]] = {"blue": [], "green": []}
    buses = {}
    for name in got:
        options = _options(kafka_bootstrap)
        bus = KafkaBus(
            KafkaOptions(
                bootstrap_servers=options.bootstrap_servers,
                session_timeout_ms=options.session_timeout_ms,
                max_poll_interval_ms=options.max_poll_interval_ms,
                retry_delay_s=options.retry_delay_s,
                policy=options.policy,
                namespace=f"{name}{secrets.token_hex(3)}",
            )
        )

        async def handler(event: Event, name: str = name) -> None:
            got[name].append(event.id)

        bus.subscribe(topic, group, handler)
        buses[name] = bus
    for bus in buses.values():
        await bus.start()
    try:
        await buses["blue"].publish(topic, _event(1))
        await buses["green"].publish(topic, _event(2))
        await _until(lambda: got["blue"] != [] and got["green"] != [])
        await asyncio.sleep(0.5)  # time for a stray cross-delivery to show
    finally:
        for bus in buses.values():
            await bus.stop()
    assert got == {"blue": ["evt_1"], "green": ["evt_2"]}
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert topic not in topics  # only the namespaced names exist on the broker


async def test_a_consumer_is_unready_until_its_group_assigns_it_and_the_producer_pings(
    kafka_bootstrap: str,
) -> None:
    topic, group = f"test.{secrets.token_hex(4)}", f"g{secrets.token_hex(3)}"
    bus = KafkaBus(_options(kafka_bootstrap))

    async def handler(_event: Event) -> None:
        pass

    bus.subscribe(topic, group, handler)
    with pytest.raises(RuntimeError, match="not started"):
        await bus.ping()
    await bus.start()
    try:
        await asyncio.sleep(0.01)  # the consumer's task runs; joining its group takes longer
        assert bus.unready_consumers(group) == [f"{group}/kafka: not assigned yet"]
        await bus.ping()
        await _until(lambda: bus.unready_consumers(group) == [])
        assert bus.unready_consumers("another-group") == []
    finally:
        await bus.stop()


async def test_a_producer_that_reaches_no_broker_fails_its_ping_in_time() -> None:
    bus = KafkaBus(_options(f"127.0.0.1:{free_port()}"))
    await bus.start()
    try:
        with pytest.raises(KafkaException):
            await asyncio.wait_for(bus.ping(timeout_s=0.5), timeout=5)
    finally:
        await bus.stop()
