"""The distributed shape's event bus: Kafka through confluent-kafka.

Publishing uses an idempotent producer (acks=all) and waits for the
broker's acknowledgement, so the outbox relay marks a row published only
once Kafka has it. Each subscription is a consumer in a group that commits
an offset only after the handler's effect is done (at-least-once); the
handler's inbox makes a redelivery harmless. confluent-kafka is a blocking
client, so polling and committing run in worker threads.

Records follow the CloudEvents Kafka protocol binding (structured mode written;
structured, binary and paymesh's older records read: see
:mod:`paymesh.platform.kafka_binding`).

A record that cannot be parsed, or whose handler keeps failing, goes to the
dead-letter topic ``<topic>.dlq`` (see :mod:`paymesh.platform.delivery` and
docs/kafka-dlq.md); its offset is committed only once that topic has it. A
failed attempt gives the record back (a seek to its offset) and polls again
after the backoff, so a long retry never outlasts ``max.poll.interval.ms``.
A consumer that dies anyway is restarted, and :meth:`KafkaBus.healthy` is
False until it polls again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from paymesh.platform.delivery import (
    DEAD_LETTER_HEADER_PREFIX,
    ConsumerHealth,
    DeliveryPolicy,
    MalformedEvent,
    dead_letter_topic,
    describe_error,
    is_infrastructure,
)
from paymesh.platform.kafka_binding import from_record, to_record
from paymesh.platform.logging import KAFKA_LOGGER, get_logger
from paymesh.platform.loops import Background, Periodic
from paymesh.platform.metrics import (
    EVENT_CONSUMER_LAG,
    EVENT_HANDLER_ERRORS,
    EVENTS_HANDLED,
    KAFKA_DEAD_LETTERS,
)

# Records handled per batch at most (one commit per batch).
_BATCH = 100

__all__ = ["REPLAY_GROUP", "KafkaBus", "KafkaOptions"]

# The consumer group `paymesh kafka replay-dlq` reads dead-letter topics with: its
# committed offsets remember what was replayed already.
REPLAY_GROUP = "paymesh-dlq-replay"

log = get_logger(__name__)

# How often a consumer refreshes its lag gauges (from the watermarks its fetches
# cached: no request to the broker).
_LAG_EVERY_S = 1.0


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
    # Retries, dead-lettering and restarts of consumers.
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)


@dataclass
class _Failure:
    """The record at the head of a partition whose handler failed, and how often."""

    offset: int
    attempts: int


class KafkaBus:
    """An :class:`~paymesh.platform.bus.EventBus` on Kafka."""

    def __init__(self, options: KafkaOptions) -> None:
        self._options = options
        self._producer: Producer | None = None
        self._subs: list[tuple[str, str, Handler]] = []
        # One supervised consumer per group.
        self._consumers = Background("kafka-consumer")
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._health = ConsumerHealth()
        # The service each consumer group belongs to: the `service` label of its metrics.
        self._services: dict[str, str] = {}

    def healthy(self, *groups: str) -> bool:
        """False while a consumer of `groups` (of any group, if none named) is dead."""
        return self._health.healthy(*groups)

    def unready_consumers(self, *groups: str) -> list[str]:
        """The consumers of `groups` that are dead or have not joined their group yet."""
        return self._health.unready(*groups)

    async def ping(self, timeout_s: float = 1.0) -> None:
        """Raise unless the producer gets the cluster's metadata from a broker."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the Kafka producer is not started")
        await asyncio.to_thread(producer.list_topics, timeout=timeout_s)

    def dead_consumers(self) -> dict[str, str]:
        """The consumers that died and wait to be restarted, with their last error."""
        return self._health.dead()

    def subscribe(self, topic: str, group: str, handler: Handler, *, service: str = "") -> None:
        """Deliver every event of `topic` to `handler`, once per consumer group; `service`
        (default: the group's name) labels the group's metrics.

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
        self._services[group] = service or self._services.get(group) or group
        self._subs.append((topic, group, handler))
        if self._producer is not None:
            consume = self._supervise(group, {topic: [handler]}, ensure_topic=True)
            self._consumers.spawn(consume)

    def _physical(self, name: str) -> str:
        """The name of a topic or group on the broker: namespaced when configured."""
        ns = self._options.namespace
        return f"{ns}.{name}" if ns else name

    def _ensure_topics(self, topics: set[str]) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": self._options.bootstrap_servers,
            "logger": KAFKA_LOGGER,
        }
        admin = AdminClient(config)
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
                # librdkafka's log lines through logging (JSON), not straight to stderr.
                "logger": KAFKA_LOGGER,
            }
        )
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll_producer, daemon=True)
        self._poller.start()
        if self._subs:
            topics = {topic for topic, _, _ in self._subs}
            await self.ensure_topics(*topics, *map(dead_letter_topic, topics))
        groups: dict[str, dict[str, list[Handler]]] = {}
        for topic, group, handler in self._subs:
            groups.setdefault(group, {}).setdefault(topic, []).append(handler)
        for group, routes in groups.items():
            self._consumers.spawn(self._supervise(group, routes))

    def _poll_producer(self) -> None:
        while not self._stopping.is_set():
            if self._producer is not None:
                self._producer.poll(0.05)

    async def publish(self, topic: str, event: Event) -> None:
        """Publish `event` keyed by its subject; return once Kafka acknowledged it.

        The record is in the CloudEvents Kafka binding's structured mode
        (:mod:`paymesh.platform.kafka_binding`); the trace context it was produced
        in, if any, travels as a ``traceparent`` header too, for consumers that read
        headers and not the envelope."""
        key, value, headers = to_record(event)
        await self._produce(self._physical(topic), key=key, value=value, headers=headers)

    async def _produce(
        self,
        physical_topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> None:
        """Produce one record to a topic named as on the broker; return once acknowledged."""
        if self._producer is None:
            raise RuntimeError("KafkaBus used before start()")
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
            physical_topic, key=key, value=value, headers=headers, on_delivery=_delivered
        )
        await done

    def _consumer(self, group: str) -> Consumer:
        return Consumer(self._consumer_config(group))

    def _consumer_config(self, group: str) -> dict[str, Any]:
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
            "logger": KAFKA_LOGGER,
        }
        return config

    async def _ensure_topic_until_ready(self, *topics: str) -> None:
        """Create `topics` if needed, retrying while the broker cannot be reached."""
        while True:
            try:
                await self.ensure_topics(*topics)
                return
            except Exception as exc:
                log.warning("kafka_topic_not_ready", topics=topics, error=repr(exc))
                await asyncio.sleep(self._options.retry_delay_s)

    async def _supervise(
        self, group: str, routes: dict[str, list[Handler]], *, ensure_topic: bool = False
    ) -> None:
        """Run the consumer of `group`; start it again, after a backoff, whenever it dies."""
        policy = self._options.policy
        loop = asyncio.get_running_loop()
        deaths = 0
        while True:
            started = loop.time()
            try:
                await self._consume(group, routes, ensure_topic=ensure_topic)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A consumer that ran a while before dying starts the backoff afresh.
                deaths = 1 if loop.time() - started > policy.backoff_max_s else deaths + 1
                delay = min(policy.backoff_max_s, policy.restart_backoff_s * 2 ** (deaths - 1))
                self._health.down(group, "kafka", exc)
                with contextlib.suppress(Exception):  # not even a broken log ends the supervisor
                    log.exception("kafka_consumer_died", group=group, restart_in_s=delay)
                await asyncio.sleep(delay)

    async def _consume(
        self, group: str, routes: dict[str, list[Handler]], *, ensure_topic: bool = False
    ) -> None:
        if ensure_topic:
            for topic in routes:
                await self._ensure_topic_until_ready(topic, dead_letter_topic(topic))
        consumer = self._consumer(group)
        loop = asyncio.get_running_loop()
        self._health.joining(group, "kafka")

        # Called from poll() in its worker thread; structlog is thread-safe.
        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("kafka_partitions_assigned", group=group, partitions=_names(partitions))
            loop.call_soon_threadsafe(self._health.assigned, group, "kafka")

        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            log.info("kafka_partitions_revoked", group=group, partitions=_names(partitions))

        handlers = {self._physical(topic): hs for topic, hs in routes.items()}
        logical = {self._physical(topic): topic for topic in routes}
        service = self._services.get(group, group)
        meters = {physical: _Meters(service, group, topic) for physical, topic in logical.items()}
        # Per partition, the record at its head whose handler failed (and how often).
        failures: dict[tuple[str, int], _Failure] = {}
        consumer.subscribe(sorted(handlers), on_assign=assigned, on_revoke=revoked)
        # Beside the loop, not in it: a handler that is stuck shows as a rising lag.
        # Per partition, the offset of the next record to handle (the consumer's
        # position runs ahead of it by the rest of a batch).
        progress: dict[tuple[str, int], int] = {}
        watch = Periodic(
            "kafka-lag",
            lambda: _refresh_lag(consumer, meters, progress),
            interval_s=_LAG_EVERY_S,
        )
        watch.start()
        try:
            while True:
                # What has arrived already, at once; only an empty queue waits, on a
                # thread. A batch's offsets are committed together after its effects.
                msgs = consumer.consume(_BATCH, 0)
                if not msgs:
                    first = await asyncio.to_thread(consumer.poll, 0.5)
                    msgs = [] if first is None else [first, *consumer.consume(_BATCH - 1, 0)]
                self._health.up(group, "kafka")
                handled: dict[tuple[str, int], int] = {}  # partition: next offset
                progress.update(_first_offsets(msgs))
                for index, msg in enumerate(msgs):
                    if msg.error():
                        log.warning("kafka_consume_error", group=group, error=str(msg.error()))
                        continue
                    topic, partition, offset = (
                        msg.topic() or "",
                        msg.partition() or 0,
                        msg.offset() or 0,
                    )
                    failed = failures.get((topic, partition))
                    attempts = (
                        failed.attempts if failed is not None and failed.offset == offset else 0
                    )
                    try:
                        event = from_record(msg.value(), _headers(msg))
                    except MalformedEvent as exc:
                        await self._dead_letter(group, logical[topic], msg, exc, "malformed", 1)
                    else:
                        try:
                            for handler in handlers.get(topic, []):
                                await handler(event)
                            meters[topic].handled.inc()
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            meters[topic].errors.inc()
                            attempts += 1
                            if not self._options.policy.gives_up(attempts, exc):
                                failures[(topic, partition)] = _Failure(offset, attempts)
                                # The rest of the batch is given back too, each partition
                                # from its first record not handled: one backoff per batch,
                                # and the next poll comes within the poll interval.
                                rest = _first_offsets(msgs[index + 1 :])
                                rest.pop((topic, partition), None)
                                for (t, p), o in rest.items():
                                    await asyncio.to_thread(consumer.seek, TopicPartition(t, p, o))
                                tp = TopicPartition(topic, partition, offset)
                                await self._retry_later(consumer, group, tp, event, exc, attempts)
                                break
                            reason = "handler_failed"
                            await self._dead_letter(
                                group, logical[topic], msg, exc, reason, attempts
                            )
                    failures.pop((topic, partition), None)
                    handled[(topic, partition)] = progress[(topic, partition)] = offset + 1
                if handled:
                    # Only after the effects (or the dead letters acknowledged): a crash
                    # before this line delivers the batch again (consumers are idempotent).
                    offsets = [TopicPartition(t, p, o) for (t, p), o in handled.items()]
                    await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
        finally:
            await watch.stop()
            await asyncio.to_thread(consumer.close)

    async def _retry_later(
        self,
        consumer: Consumer,
        group: str,
        tp: TopicPartition,
        event: Event,
        error: Exception,
        attempts: int,
    ) -> None:
        """Give the record back (the next poll of its partition returns it) after a backoff."""
        # The consumer polls again after the backoff: keep it well inside the poll interval.
        delay = min(
            self._options.policy.backoff(attempts), self._options.max_poll_interval_ms / 2000
        )
        log.warning(
            "event_handler_failed",
            group=group,
            topic=tp.topic,
            partition=tp.partition,
            offset=tp.offset,
            event_id=event.id,
            attempt=attempts,
            infrastructure=is_infrastructure(error),
            retry_in_s=delay,
            exc_info=error,
        )
        await asyncio.to_thread(consumer.seek, tp)
        await asyncio.sleep(delay)

    async def _dead_letter(
        self,
        group: str,
        topic: str,
        msg: Message,
        error: BaseException,
        reason: str,
        attempts: int,
    ) -> None:
        """Copy `msg` to its dead-letter topic, with headers saying why; wait for the ack."""
        kind, message = describe_error(error)
        physical = msg.topic() or self._physical(topic)
        dlq = dead_letter_topic(physical)
        p = DEAD_LETTER_HEADER_PREFIX
        headers: list[tuple[str, str | bytes | None]] = [
            *_headers(msg),
            (f"{p}reason", reason),
            (f"{p}error", message),
            (f"{p}exception", kind),
            (f"{p}original_topic", physical),
            (f"{p}partition", str(msg.partition())),
            (f"{p}offset", str(msg.offset())),
            (f"{p}attempts", str(attempts)),
            (f"{p}consumer_group", self._physical(group)),
            (f"{p}failed_at", datetime.now(UTC).isoformat(timespec="milliseconds")),
        ]
        await self._produce(dlq, key=msg.key(), value=msg.value(), headers=headers)
        service = self._services.get(group, group)
        KAFKA_DEAD_LETTERS.labels(service=service, group=group, topic=topic).inc()
        log.error(
            "kafka_record_dead_lettered",
            group=group,
            topic=physical,
            partition=msg.partition(),
            offset=msg.offset(),
            dead_letter_topic=dlq,
            reason=reason,
            exception=kind,
            error=message,
            attempts=attempts,
        )

    async def replay_dead_letters(
        self, topic: str, *, limit: int | None = None, idle_s: float = 5.0, join_s: float = 60.0
    ) -> int:
        """Re-publish the records of ``<topic>.dlq`` to `topic`; return how many.

        Each record keeps its key, value and headers, less the ``dlq_`` ones; its
        offset in the dead-letter topic is committed (group ``REPLAY_GROUP``) only
        once `topic` has acknowledged it, so a replay that stops early resumes
        where it stopped and one that crashes repeats at most a record (consumers
        are idempotent). Stops after `limit` records, or when no record came for
        `idle_s` seconds after the consumer joined its group.
        """
        physical = self._physical(topic)
        dlq = dead_letter_topic(physical)
        await self.ensure_topics(dead_letter_topic(topic))
        consumer = self._consumer(REPLAY_GROUP)
        joined = threading.Event()
        consumer.subscribe([dlq], on_assign=lambda _c, _p: joined.set())
        loop = asyncio.get_running_loop()
        join_deadline = loop.time() + join_s
        replayed, last = 0, loop.time()
        try:
            while limit is None or replayed < limit:
                msg = await asyncio.to_thread(consumer.poll, 0.5)
                if msg is None:
                    if not joined.is_set():
                        # The idle time counts from the moment partitions are assigned.
                        last = loop.time()
                        if last > join_deadline:
                            raise RuntimeError(f"no partition of {dlq} assigned in {join_s} s")
                    elif loop.time() - last > idle_s:
                        break
                    continue
                if msg.error():
                    log.warning("kafka_consume_error", group=REPLAY_GROUP, error=str(msg.error()))
                    continue
                headers = [
                    (k, v) for k, v in _headers(msg) if not k.startswith(DEAD_LETTER_HEADER_PREFIX)
                ]
                await self._produce(physical, key=msg.key(), value=msg.value(), headers=headers)
                await asyncio.to_thread(consumer.commit, message=msg, asynchronous=False)
                replayed += 1
                last = loop.time()
                log.info("kafka_dead_letter_replayed", topic=physical, dlq_offset=msg.offset())
        finally:
            await asyncio.to_thread(consumer.close)
        return replayed

    async def stop(self) -> None:
        """Stop consumers, flush the producer."""
        await self._consumers.stop()
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 10)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5)
        self._producer = None


class _Meters:
    """The metric children of one (group, topic) a consumer reads."""

    def __init__(self, service: str, group: str, topic: str) -> None:
        labels = {"service": service, "group": group, "topic": topic}
        self.handled = EVENTS_HANDLED.labels(**labels)
        self.errors = EVENT_HANDLER_ERRORS.labels(**labels)
        self.lag = EVENT_CONSUMER_LAG.labels(**labels)


async def _refresh_lag(
    consumer: Consumer, meters: dict[str, _Meters], progress: dict[tuple[str, int], int]
) -> None:
    """Refresh the consumer's lag gauges (every :data:`_LAG_EVERY_S`, beside its loop)."""
    try:
        await asyncio.to_thread(_measure_lag, consumer, meters, dict(progress))
    except (KafkaException, RuntimeError) as exc:  # e.g. the consumer is closing
        log.debug("kafka_lag_unknown", error=str(exc))


def _measure_lag(
    consumer: Consumer, meters: dict[str, _Meters], progress: dict[tuple[str, int], int]
) -> None:
    """Set each topic's lag: high watermark minus the next record to handle (`progress`;
    else the consumer's position), over its assigned partitions.

    Runs in a worker thread. The high watermarks are those the consumer's own
    fetches cached (no request to the broker); a partition not fetched yet, or
    not read yet, counts from its low watermark. A gauge only: nothing decides
    on it.
    """
    lag = dict.fromkeys(meters, 0)
    assigned = [tp for tp in consumer.assignment() if tp.topic in meters]
    for tp in consumer.position(assigned) if assigned else []:
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            continue
        at = progress.get((tp.topic, tp.partition), tp.offset)
        at = at if at >= 0 else max(low, 0)
        lag[tp.topic] += max(0, high - at)
    for topic, n in lag.items():
        meters[topic].lag.set(n)


def _first_offsets(msgs: list[Message]) -> dict[tuple[str, int], int]:
    """Each partition's first offset among `msgs` (error records left out)."""
    first: dict[tuple[str, int], int] = {}
    for msg in msgs:
        if not msg.error():
            first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
    return first


def _headers(msg: Message) -> list[tuple[str, str | bytes | None]]:
    headers = msg.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{p.topic}[{p.partition}]" for p in partitions]
