"""Event bus adapters: the port every service publishes to and consumes from.

:class:`InProcessBus` is the embedded shape's bus: one queue per
(topic, consumer group), delivered at least once. A handler that raises gets
the event again after a backoff; one that keeps failing has the event
dead-lettered (:mod:`paymesh.platform.delivery` has the policy, the same as on
Kafka). The Kafka adapter keeps the same port.

Dead letters of the embedded bus are appended to a JSON-lines file
(``var/dead-letters.jsonl`` under ``paymesh up``), one object per event: its
topic, group, the event itself and the ``dlq_`` fields saying why. To replay
them, move (or copy) the lines into ``dead-letters.replay.jsonl`` beside it: the
next start publishes each event to its topic again, then renames the file to
``dead-letters.replayed-<time>.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from paymesh.contracts.events import Event
from paymesh.platform.delivery import ConsumerHealth, DeliveryPolicy, describe_error
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Background
from paymesh.platform.metrics import EVENT_CONSUMER_LAG, EVENT_HANDLER_ERRORS, EVENTS_HANDLED

__all__ = ["DeadLetter", "EventBus", "Handler", "InProcessBus"]

log = get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    """Publish events to topics; deliver them to consumer groups."""

    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, topic: str, group: str, handler: Handler, *, service: str = "") -> None:
        """Deliver `topic` to `handler` once per `group`; `service` (default: the group's
        name) is the service label of the group's metrics."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def healthy(self, *groups: str) -> bool:
        """False while a consumer of `groups` (of any group, if none named) is dead."""
        ...

    def unready_consumers(self, *groups: str) -> list[str]:
        """The consumers of `groups` that cannot work (dead, or not assigned yet), each
        with the reason; empty when every one can."""
        ...

    async def ping(self) -> None:
        """Raise unless this process can publish (Kafka: the producer reaches a broker)."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    """An event a consumer group gave up on, and why."""

    topic: str
    group: str
    event: dict[str, Any]
    dlq_reason: str
    dlq_error: str
    dlq_exception: str
    dlq_attempts: int
    dlq_failed_at: str


@dataclass
class _Subscription:
    topic: str
    group: str
    handler: Handler
    service: str
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    # The event being delivered: a consumer restarted after dying takes it up again.
    current: Event | None = None

    def __post_init__(self) -> None:
        labels = {"service": self.service, "group": self.group, "topic": self.topic}
        self.handled = EVENTS_HANDLED.labels(**labels)
        self.errors = EVENT_HANDLER_ERRORS.labels(**labels)
        # The lag is read when scraped: the events queued and the one in delivery.
        EVENT_CONSUMER_LAG.labels(**labels).set_function(self.lag)

    def lag(self) -> float:
        """Events published to the group and not yet handled."""
        return self.queue.qsize() + (self.current is not None)

    def log_fields(self, event: Event) -> dict[str, str]:
        """What a log line about delivering `event` here says."""
        return {"group": self.group, "topic": self.topic, "event_id": event.id}


class InProcessBus:
    """An at-least-once bus inside one process."""

    def __init__(
        self,
        *,
        policy: DeliveryPolicy | None = None,
        dead_letters: Path | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        """`dead_letters`: the JSON-lines file dead letters are appended to (None: kept in
        memory only); `retry_delay_s`: shorthand for the policy's first backoff."""
        policy = policy or DeliveryPolicy()
        if retry_delay_s is not None:
            policy = DeliveryPolicy(
                max_attempts=policy.max_attempts,
                backoff_s=retry_delay_s,
                backoff_max_s=max(retry_delay_s, policy.backoff_max_s),
                restart_backoff_s=policy.restart_backoff_s,
            )
        self._policy = policy
        self._subs: dict[str, list[_Subscription]] = {}
        self._consumers = Background("bus-consumer")
        self._started = False
        self._health = ConsumerHealth()
        self._dead_letter_file = dead_letters
        # The latest dead letters, for a look from inside the process (tests, debugging).
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)

    def subscribe(self, topic: str, group: str, handler: Handler, *, service: str = "") -> None:
        """Deliver every event of `topic` to `handler`, once per group.

        After :meth:`start`, the new consumer starts at once (it receives the
        events published from now on). `service` labels the group's metrics
        (default: the group's name).
        """
        sub = _Subscription(topic, group, handler, service or group)
        self._subs.setdefault(topic, []).append(sub)
        if self._started:
            self._start_consumer(sub)

    async def publish(self, topic: str, event: Event) -> None:
        """Queue `event` for every group subscribed to `topic`."""
        for sub in self._subs.get(topic, []):
            sub.queue.put_nowait(event)

    def healthy(self, *groups: str) -> bool:
        """False while a consumer of `groups` (of any group, if none named) is dead."""
        return self._health.healthy(*groups)

    def unready_consumers(self, *groups: str) -> list[str]:
        """The consumers of `groups` that are dead (in process, nothing is assigned)."""
        return self._health.unready(*groups)

    async def ping(self) -> None:
        """In process: always able to publish."""

    async def start(self) -> None:
        """Start one consumer task per subscription (and each one added later); publish
        the dead letters an operator put up for replay."""
        if self._started:
            return
        self._started = True
        for subs in self._subs.values():
            for sub in subs:
                self._start_consumer(sub)
        await self._replay_dead_letters()

    def _start_consumer(self, sub: _Subscription) -> None:
        self._consumers.spawn(self._supervise(sub))

    async def _supervise(self, sub: _Subscription) -> None:
        """Run the consumer of `sub`; start it again, after a backoff, whenever it dies."""
        deaths = 0
        name = f"{sub.topic}#{id(sub)}"
        while True:
            try:
                await self._consume(sub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                deaths += 1
                delay = min(
                    self._policy.backoff_max_s, self._policy.restart_backoff_s * 2 ** (deaths - 1)
                )
                self._health.down(sub.group, name, exc)
                with contextlib.suppress(Exception):  # not even a broken log ends the supervisor
                    log.exception("bus_consumer_died", group=sub.group, restart_in_s=delay)
                await asyncio.sleep(delay)
                self._health.up(sub.group, name)

    async def _consume(self, sub: _Subscription) -> None:
        while True:
            if sub.current is None:
                sub.current = await sub.queue.get()
            event = sub.current
            attempts = 0
            while True:
                try:
                    await sub.handler(event)
                    sub.handled.inc()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    sub.errors.inc()
                    attempts += 1
                    if self._policy.gives_up(attempts, exc):
                        self._dead_letter(sub, event, exc, attempts)
                        break
                    delay = self._policy.backoff(attempts)
                    log.warning(
                        "event_handler_failed",
                        **sub.log_fields(event),
                        attempt=attempts,
                        retry_in_s=delay,
                        exc_info=exc,
                    )
                    await asyncio.sleep(delay)
            sub.current = None

    def _dead_letter(
        self, sub: _Subscription, event: Event, error: Exception, attempts: int
    ) -> None:
        kind, message = describe_error(error)
        letter = DeadLetter(
            topic=sub.topic,
            group=sub.group,
            event=asdict(event),
            dlq_reason="handler_failed",
            dlq_error=message,
            dlq_exception=kind,
            dlq_attempts=attempts,
            dlq_failed_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        if self._dead_letter_file is not None:
            # A failed write ends this consumer; restarted, it retries the same event.
            self._dead_letter_file.parent.mkdir(parents=True, exist_ok=True)
            with self._dead_letter_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(letter), sort_keys=True) + "\n")
        self.dead_letters.append(letter)
        log.error(
            "event_dead_lettered",
            **sub.log_fields(event),
            exception=kind,
            error=message,
            attempts=attempts,
            dead_letters=str(self._dead_letter_file or "memory"),
        )

    async def _replay_dead_letters(self) -> None:
        """Publish every event of ``dead-letters.replay.jsonl`` again, then set it aside."""
        if self._dead_letter_file is None:
            return
        path = self._dead_letter_file.with_name(f"{self._dead_letter_file.stem}.replay.jsonl")
        if not path.is_file():
            return
        replayed = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            await self.publish(record["topic"], Event(**record["event"]))
            replayed += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        done = path.with_name(f"{self._dead_letter_file.stem}.replayed-{stamp}.jsonl")
        path.rename(done)
        log.info("dead_letters_replayed", count=replayed, file=str(done))

    async def stop(self) -> None:
        """Stop every consumer (events still queued are dropped; the outbox has them)."""
        self._started = False
        await self._consumers.stop()
