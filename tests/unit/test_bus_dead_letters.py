"""The in-process bus keeps the Kafka bus's contract for poison events: bounded retries,
then a dead letter an operator can read and replay; a dead consumer is restarted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

from paymesh.contracts.events import Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.delivery import DeliveryPolicy
from tests.conftest import free_port

FAST = DeliveryPolicy(max_attempts=3, backoff_s=0.01, backoff_max_s=0.05, restart_backoff_s=0.3)


def _event(n: int) -> Event:
    return Event(
        id=f"evt_{n}", source="test", type="payment.succeeded", subject="pay_1",
        time="2026-01-01T00:00:00Z", tenant="ten_1", data={"n": n},
    )  # fmt: skip


async def _until(predicate: Callable[[], bool], timeout_s: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_a_handler_that_always_fails_is_dead_lettered_to_the_file_and_the_next_event_flows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead-letters.jsonl"
    bus = InProcessBus(policy=FAST, dead_letters=path)
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if event.id == "evt_1":
            raise ValueError("cannot apply evt_1")

    bus.subscribe("payments", "g", handler)
    await bus.start()
    try:
        await bus.publish("payments", _event(1))
        await bus.publish("payments", _event(2))
        await _until(lambda: "evt_2" in calls)
    finally:
        await bus.stop()
    assert calls == ["evt_1"] * 3 + ["evt_2"]
    [line] = path.read_text().splitlines()
    letter = json.loads(line)
    assert letter["topic"] == "payments"
    assert letter["group"] == "g"
    assert Event(**letter["event"]) == _event(1)
    assert letter["dlq_reason"] == "handler_failed"
    assert letter["dlq_exception"] == "builtins.ValueError"
    assert letter["dlq_error"] == "cannot apply evt_1"
    assert letter["dlq_attempts"] == 3
    assert [d.event["id"] for d in bus.dead_letters] == ["evt_1"]


async def test_a_handler_that_fails_fewer_times_than_allowed_is_not_dead_lettered() -> None:
    bus = InProcessBus(policy=FAST)
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if len(calls) < 3:
            raise RuntimeError("not yet")

    bus.subscribe("payments", "g", handler)
    await bus.start()
    try:
        await bus.publish("payments", _event(1))
        await _until(lambda: len(calls) == 3)
        await asyncio.sleep(0.1)
    finally:
        await bus.stop()
    assert calls == ["evt_1"] * 3
    assert list(bus.dead_letters) == []


async def test_an_unreachable_dependency_is_retried_past_the_attempt_limit() -> None:
    bus = InProcessBus(policy=FAST)
    calls: list[str] = []
    closed = free_port()

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if len(calls) <= 6:  # twice the limit: a connection refused, as by a database down
            socket.create_connection(("127.0.0.1", closed), timeout=1).close()

    bus.subscribe("payments", "g", handler)
    await bus.start()
    try:
        await bus.publish("payments", _event(1))
        await _until(lambda: len(calls) == 7)
    finally:
        await bus.stop()
    assert list(bus.dead_letters) == []


async def test_dead_letters_put_up_for_replay_are_published_again_at_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead-letters.jsonl"
    fixed = False
    handled: list[str] = []

    async def handler(event: Event) -> None:
        if not fixed:
            raise ValueError("a bug, fixed later")
        handled.append(event.id)

    bus = InProcessBus(policy=FAST, dead_letters=path)
    bus.subscribe("payments", "g", handler)
    await bus.start()
    try:
        await bus.publish("payments", _event(1))
        await _until(lambda: path.exists())
    finally:
        await bus.stop()

    fixed = True
    path.rename(tmp_path / "dead-letters.replay.jsonl")  # what the operator does
    bus = InProcessBus(policy=FAST, dead_letters=path)
    bus.subscribe("payments", "g", handler)
    await bus.start()
    try:
        await _until(lambda: handled == ["evt_1"])
    finally:
        await bus.stop()
    assert not (tmp_path / "dead-letters.replay.jsonl").exists()
    [done] = tmp_path.glob("dead-letters.replayed-*.jsonl")
    assert json.loads(done.read_text())["event"]["id"] == "evt_1"


async def test_a_consumer_that_dies_is_restarted_and_reported_unhealthy_meanwhile(
    tmp_path: Path,
) -> None:
    # The dead-letter file cannot be written (a directory is in its place): the
    # consumer dies while dead-lettering, and is restarted with the same event.
    path = tmp_path / "dead-letters.jsonl"
    path.mkdir()
    bus = InProcessBus(policy=FAST, dead_letters=path)
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if event.id == "evt_1":
            raise ValueError("poison")

    bus.subscribe("payments", "g", handler)
    bus.subscribe("accounts", "other", handler)
    await bus.start()
    try:
        assert bus.healthy()
        await bus.publish("payments", _event(1))
        await _until(lambda: not bus.healthy("g"))
        assert bus.healthy("other")  # only the group whose consumer died
        assert not bus.healthy()
        path.rmdir()  # the operator fixes the disk
        await _until(lambda: path.is_file())
        await _until(lambda: bus.healthy("g"))
        await bus.publish("payments", _event(2))
        await _until(lambda: "evt_2" in calls)
    finally:
        await bus.stop()
    [line] = path.read_text().splitlines()
    assert json.loads(line)["event"]["id"] == "evt_1"
