"""Poison records on a real Kafka-protocol broker: dead-lettered to ``<topic>.dlq`` after
bounded retries, never a dead consumer; dead consumers restart; operators replay."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, Message, Producer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from typer.testing import CliRunner, Result

from paymesh.cli import app
from paymesh.contracts.events import Event
from paymesh.platform.db import Database
from paymesh.platform.delivery import DeliveryPolicy
from paymesh.platform.kafka import KafkaBus, KafkaOptions
from paymesh.platform.rpc import GrpcServer
from tests.conftest import free_port, restore_test_logging

pytestmark = pytest.mark.timeout(30)


def _options(bootstrap: str, namespace: str, **policy: Any) -> KafkaOptions:
    # Small timeouts: the first group join is slow otherwise.
    return KafkaOptions(
        bootstrap_servers=bootstrap,
        session_timeout_ms=6_000,
        max_poll_interval_ms=10_000,
        retry_delay_s=0.05,
        namespace=namespace,
        policy=DeliveryPolicy(
            **{"max_attempts": 3, "backoff_s": 0.05, "backoff_max_s": 0.2, **policy}
        ),
    )


def _event(n: int, subject: str = "pay_1") -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject=subject,
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


async def _until(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def _produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=key, value=value, headers=[("origin", b"a-test")])
    assert producer.flush(10) == 0


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _read(bootstrap: str, topic: str, count: int, timeout_s: float = 15) -> list[Record]:
    """The first `count` records of `topic`, read by a fresh group (fewer on timeout)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{secrets.token_hex(4)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6_000,
        }
    )
    consumer.subscribe([topic])
    got: list[Record] = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            msg: Message | None = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = {k: v for k, v in msg.headers() or []}
            got.append(Record(msg.key(), msg.value(), headers))
    finally:
        consumer.close()
    return got


def _dead_letters(group: str, topic: str) -> float:
    value = REGISTRY.get_sample_value(
        # A group subscribed without a service name is its own service.
        "paymesh_kafka_dead_letters_total",
        {"service": group, "group": group, "topic": topic},
    )
    return value or 0.0


async def test_a_malformed_record_is_dead_lettered_with_its_headers_and_the_next_one_is_handled(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-malformed"
    bus = KafkaBus(_options(kafka_bootstrap, ns))
    got: list[str] = []

    async def handler(event: Event) -> None:
        got.append(event.id)

    bus.subscribe(topic, group, handler)
    await bus.start()
    try:
        # One partition for every record (same key): the bad ones come first.
        _produce_raw(kafka_bootstrap, f"{ns}.{topic}", b"pay_1", b"{not json")
        _produce_raw(kafka_bootstrap, f"{ns}.{topic}", b"pay_1", b'{"id": "evt_x", "data": 1}')
        await bus.publish(topic, _event(1))
        await _until(lambda: got == ["evt_1"])
        assert bus.healthy()
    finally:
        await bus.stop()
    letters = await asyncio.to_thread(_read, kafka_bootstrap, f"{ns}.{topic}.dlq", 2)
    assert [(r.key, r.value) for r in letters] == [
        (b"pay_1", b"{not json"),
        (b"pay_1", b'{"id": "evt_x", "data": 1}'),
    ]
    first, second = (r.headers for r in letters)
    assert first["origin"] == b"a-test"  # the original headers travel along
    assert first["dlq_reason"] == b"malformed"
    assert first["dlq_exception"] == b"paymesh.platform.delivery.MalformedEvent"
    assert first["dlq_error"].startswith(b"not JSON")
    assert first["dlq_original_topic"] == f"{ns}.{topic}".encode()
    assert first["dlq_consumer_group"] == f"{ns}.{group}".encode()
    assert first["dlq_attempts"] == b"1"
    assert first["dlq_partition"] == second["dlq_partition"]
    assert int(second["dlq_offset"]) == int(first["dlq_offset"]) + 1
    assert b"missing attributes" in second["dlq_error"]
    assert _dead_letters(group, topic) == 2


async def test_a_handler_that_fails_a_few_times_then_succeeds_is_not_dead_lettered(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-flaky"
    bus = KafkaBus(_options(kafka_bootstrap, ns, max_attempts=4))
    calls: list[str] = []
    handled: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if len(calls) <= 3:  # fails three times: the fourth attempt is the last allowed
            raise RuntimeError("not yet")
        handled.append(event.id)

    bus.subscribe(topic, group, handler)
    await bus.start()
    try:
        await bus.publish(topic, _event(1))
        await bus.publish(topic, _event(2))
        await _until(lambda: handled == ["evt_1", "evt_2"])
    finally:
        await bus.stop()
    assert calls == ["evt_1"] * 4 + ["evt_2"]
    assert _dead_letters(group, topic) == 0


async def test_a_handler_that_always_fails_is_dead_lettered_after_the_bounded_attempts(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-poison"
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if event.id == "evt_1":
            raise ValueError("this event cannot be applied")

    bus = KafkaBus(_options(kafka_bootstrap, ns, max_attempts=3))
    bus.subscribe(topic, group, handler)
    await bus.start()
    try:
        await bus.publish(topic, _event(1))
        await bus.publish(topic, _event(2))
        await _until(lambda: "evt_2" in calls)
    finally:
        await bus.stop()
    assert calls == ["evt_1"] * 3 + ["evt_2"]
    [letter] = await asyncio.to_thread(_read, kafka_bootstrap, f"{ns}.{topic}.dlq", 1)
    assert letter.key == b"pay_1"
    assert Event.from_json(letter.value or b"") == _event(1)
    assert letter.headers["content-type"] == b"application/cloudevents+json"
    assert letter.headers["dlq_reason"] == b"handler_failed"
    assert letter.headers["dlq_exception"] == b"builtins.ValueError"
    assert letter.headers["dlq_error"] == b"this event cannot be applied"
    assert letter.headers["dlq_attempts"] == b"3"
    assert _dead_letters(group, topic) == 1

    # Its offset was committed: the group, started again, goes on after it.
    again: list[str] = []

    async def later(event: Event) -> None:
        again.append(event.id)

    bus = KafkaBus(_options(kafka_bootstrap, ns))
    bus.subscribe(topic, group, later)
    await bus.start()
    try:
        await bus.publish(topic, _event(3))
        await _until(lambda: "evt_3" in again)
    finally:
        await bus.stop()
    assert "evt_1" not in again


async def test_a_database_that_cannot_be_reached_is_retried_past_the_attempt_limit(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-infra"
    # Nothing listens there: every connection is refused, as with a database that is down.
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if len(calls) <= 6:  # twice the attempt limit
            async with down.transaction() as conn:
                await conn.execute(sa.text("SELECT 1"))

    bus = KafkaBus(_options(kafka_bootstrap, ns, max_attempts=3))
    bus.subscribe(topic, group, handler)
    await bus.start()
    try:
        await bus.publish(topic, _event(1))
        await _until(lambda: len(calls) >= 7)
    finally:
        await bus.stop()
        await down.dispose()
    assert calls == ["evt_1"] * 7
    assert _dead_letters(group, topic) == 0


class _CommitFailsOnce(Consumer):  # type: ignore[misc]
    """A consumer whose first commit fails: an error no handler retry covers."""

    failed = False

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if not _CommitFailsOnce.failed:
            _CommitFailsOnce.failed = True
            raise RuntimeError("the consumer broke")
        return super().commit(*args, **kwargs)


class _BreakingBus(KafkaBus):
    def _consumer(self, group: str) -> Consumer:
        return _CommitFailsOnce(self._consumer_config(group))


def _health(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def test_a_consumer_that_dies_is_restarted_and_grpc_health_says_so_meanwhile(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-dies"
    _CommitFailsOnce.failed = False
    bus = _BreakingBus(_options(kafka_bootstrap, ns, restart_backoff_s=3.0))
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)

    bus.subscribe(topic, group, handler)
    server = GrpcServer(
        "127.0.0.1:0",
        lambda _: None,
        ["test.Service"],
        service="test",
        ready=lambda: bus.healthy(group),
        ready_interval_s=0.1,
    )
    await bus.start()
    port = await server.start()
    try:
        assert await asyncio.to_thread(_health, port) == "SERVING"
        await bus.publish(topic, _event(1))
        await _until(lambda: not bus.healthy(group))
        assert bus.dead_consumers() == {f"{group}/kafka": "builtins.RuntimeError"}
        await asyncio.sleep(0.3)  # the health watcher looks every 0.1 s
        assert await asyncio.to_thread(_health, port) == "NOT_SERVING"
        # Restarted, the consumer gets the uncommitted record again.
        await _until(lambda: calls == ["evt_1", "evt_1"] and bus.healthy(group))
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(_health, port) == "SERVING"
        await bus.publish(topic, _event(2))
        await _until(lambda: calls[-1:] == ["evt_2"])
    finally:
        await server.stop(0)
        await bus.stop()


async def test_replay_dlq_publishes_dead_letters_to_their_topic_again_without_dlq_headers(
    kafka_bootstrap: str,
) -> None:
    ns, topic, group = f"ns{secrets.token_hex(3)}", f"test.{secrets.token_hex(4)}", "g-replay"
    fixed = False
    seen: list[tuple[str, int]] = []

    async def handler(event: Event) -> None:
        if not fixed and event.data["n"] < 3:
            raise ValueError("a bug, fixed later")
        seen.append((event.id, event.data["n"]))

    bus = KafkaBus(_options(kafka_bootstrap, ns, max_attempts=1))
    bus.subscribe(topic, group, handler)
    await bus.start()
    try:
        for n in (1, 2, 3):
            await bus.publish(topic, _event(n, subject=f"pay_{n}"))
        await _until(lambda: ("evt_3", 3) in seen)
        await _until(lambda: _dead_letters(group, topic) == 2)
        fixed = True  # the bug is fixed: replay the two dead letters

        env = {
            "PAYMESH_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "PAYMESH_KAFKA__NAMESPACE": ns,
            "PAYMESH_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "PAYMESH_LOG_LEVEL": "WARNING",
        }

        def run(*extra: str) -> Result:
            # The command runs its own event loop: in a thread, beside this test's.
            args = ["kafka", "replay-dlq", topic, *extra, "--idle", "2"]
            try:
                return CliRunner().invoke(app, args, env=env)
            finally:
                # The command configured logging for itself (level WARNING).
                restore_test_logging()

        first = await asyncio.to_thread(run, "--limit", "1")
        assert first.exit_code == 0, first.output
        assert f"replayed 1 records from {ns}.{topic}.dlq to {ns}.{topic}" in first.stdout
        await _until(lambda: len(seen) == 2)
        rest = await asyncio.to_thread(run)  # goes on after the one replayed already
        assert rest.exit_code == 0, rest.output
        assert "replayed 1 records" in rest.stdout
        await _until(lambda: len(seen) == 3)
    finally:
        await bus.stop()
    assert sorted(seen) == [("evt_1", 1), ("evt_2", 2), ("evt_3", 3)]
    # The topic holds the three events and the two replayed copies, with the
    # original key and headers and nothing of the dead-letter step.
    records = await asyncio.to_thread(_read, kafka_bootstrap, f"{ns}.{topic}", 5)
    assert sorted((Event.from_json(r.value or b"").id.encode(), r.key) for r in records) == [
        (b"evt_1", b"pay_1"), (b"evt_1", b"pay_1"), (b"evt_2", b"pay_2"),
        (b"evt_2", b"pay_2"), (b"evt_3", b"pay_3"),
    ]  # fmt: skip
    for record in records:
        assert set(record.headers) == {"content-type"}
