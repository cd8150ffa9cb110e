"""The distributed shape's event bus: Kafka through confluent-kafka.

Publishing uses an idempotent producer (acks=all) and waits for the
broker's acknowledgement, so the outbox relay marks a row published only
once Kafka has it. Each subscription is a consumer in a group that commits
an offset only after the handler's effect is done (at-least-once); the
handler's inbox makes a redelivery harmless. confluent-kafka is a blocking
client, so polling and committing run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from paymesh.contracts.events import Event
from paymesh.platform.bus import Handler
from paymesh.platform.logging import get_logger

__all__ = ["KafkaBus", "KafkaOptions"]

log = get_logger(__name__)


@dataclass(frozen=True)
class KafkaOptions:
    """How to reach Kafka and how consumers behave."""

    bootstrap_servers: str
    client_id: str = "paymesh"
    partitions: int = 3
    session_timeout_ms: int = 45_000
    max_poll_interval_ms: int = 300_000
    retry_delay_s: float = 0.5
    # Prefixed to every topic and consumer group ("<namespace>.<name>"), so several
    # installations can share one Kafka cluster without seeing each other.
    namespace: str = ""


class KafkaBus:
    """An :class:`~paymesh.platform.bus.EventBus` on Kafka."""

    def __init__(self, options: KafkaOptions) -> None:
        self._options = options
        self._producer: Producer | None = None
        self._subs: list[tuple[str, str, Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Deliver every event of `topic` to `handler`, once per consumer group.

        A process runs ONE Kafka consumer per group, subscribed to every topic
        the group wants: two consumers of one group with different topic
        subscriptions make the broker rebalance the group back and forth, and
        a partition can sit assigned to the member that does not read its
        topic (seen with the webhooks service, which reads two topics).
        So every topic of a group is subscribed before :meth:`start`; after
        it, only a new group may subscribe (its consumer starts at once, and
        first creates the topic if needed, in the background).
        """
        if self._producer is not None and any(g == group for _, g, _ in self._subs):
            raise RuntimeError(f"group {group!r} is consuming already: subscribe before start")
        self._subs.append((topic, group, handler))
        if self._producer is not None:
            consume = self._consume(group, {topic: [handler]}, ensure_topic=True)
            self._tasks.append(asyncio.create_task(consume))

    def _physical(self, name: str) -> str:
        """The name of a topic or group on the broker: namespaced when configured."""
        ns = self._options.namespace
        return f"{ns}.{name}" if ns else name

    def _ensure_topics(self, topics: set[str]) -> None:
        admin = AdminClient({"bootstrap.servers": self._options.bootstrap_servers})
        futures = admin.create_topics(
            [
                NewTopic(self._physical(t), num_partitions=self._options.partitions)
                for t in sorted(topics)
            ]
        )
        for topic, future in futures.items():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            log.debug("kafka_topic_ready", topic=topic)

    async def ensure_topics(self, *topics: str) -> None:
        """Create `topics` if they do not exist yet."""
        await asyncio.to_thread(self._ensure_topics, set(topics))

    async def start(self) -> None:
        """Connect the producer and start one consumer per group (all its topics)."""
        self._producer = Producer(
            {
                "bootstrap.servers": self._options.bootstrap_servers,
                "client.id": self._options.client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
            }
        )
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll_producer, daemon=True)
        self._poller.start()
        if self._subs:
            await self.ensure_topics(*{topic for topic, _, _ in self._subs})
        groups: dict[str, dict[str, list[Handler]]] = {}
        for topic, group, handler in self._subs:
            groups.setdefault(group, {}).setdefault(topic, []).append(handler)
        for group, routes in groups.items():
            self._tasks.append(asyncio.create_task(self._consume(group, routes)))

    def _poll_producer(self) -> None:
        while not self._stopping.is_set():
            if self._producer is not None:
                self._producer.poll(0.05)

    async def publish(self, topic: str, event: Event) -> None:
        """Publish `event` keyed by its subject; return once Kafka acknowledged it."""
        if self._producer is None:
            raise RuntimeError("KafkaBus.publish before start()")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def _delivered(err: KafkaError | None, _msg: Message) -> None:
            def _settle() -> None:
                if done.done():
                    return
                if err is not None:
                    done.set_exception(KafkaException(err))
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(_settle)

        self._producer.produce(
            self._physical(topic),
            key=event.subject.encode(),
            value=event.to_json(),
            headers={"ce_id": event.id, "ce_type": event.type, "ce_tenant": event.tenant},
            on_delivery=_delivered,
        )
        await done

    def _consumer(self, group: str) -> Consumer:
        o = self._options
        config: dict[str, Any] = {
            "bootstrap.servers": o.bootstrap_servers,
            "client.id": o.client_id,
            "group.id": self._physical(group),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": o.session_timeout_ms,
            "max.poll.interval.ms": o.max_poll_interval_ms,
            "heartbeat.interval.ms": max(100, o.session_timeout_ms // 10),
        }
        return Consumer(config)

    async def _ensure_topic_until_ready(self, topic: str) -> None:
        """Create `topic` if needed, retrying while the broker cannot be reached."""
        while True:
            try:
                await self.ensure_topics(topic)
                return
            except Exception as exc:
                log.warning("kafka_topic_not_ready", topic=topic, error=repr(exc))
                await asyncio.sleep(self._options.retry_delay_s)

    async def _consume(
        self, group: str, routes: dict[str, list[Handler]], *, ensure_topic: bool = False
    ) -> None:
        if ensure_topic:
            for topic in routes:
                await self._ensure_topic_until_ready(topic)
        consumer = self._consumer(group)

        # Called from poll() in its worker thread; structlog is thread-safe.
        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("kafka_partitions_assigned", group=group, partitions=_names(partitions))

        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("kafka_partitions_revoked", group=group, partitions=_names(partitions))

        handlers = {self._physical(topic): hs for topic, hs in routes.items()}
        consumer.subscribe(sorted(handlers), on_assign=assigned, on_revoke=revoked)
        try:
            while True:
                msg = await asyncio.to_thread(consumer.poll, 0.5)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("kafka_consume_error", group=group, error=str(msg.error()))
                    continue
                event = Event.from_json(msg.value() or b"{}")
                for handler in handlers.get(msg.topic() or "", []):
                    while True:
                        try:
                            await handler(event)
                            break
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            log.exception("event_handler_failed", group=group, event_id=event.id)
                            await asyncio.sleep(self._options.retry_delay_s)
                # Commit only after the effect: a crash before this line redelivers.
                await asyncio.to_thread(consumer.commit, message=msg, asynchronous=False)
        finally:
            await asyncio.to_thread(consumer.close)

    async def stop(self) -> None:
        """Stop consumers, flush the producer."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 10)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5)
        self._producer = None


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{p.topic}[{p.partition}]" for p in partitions]
