"""Delivery through the running webhooks service to a real HTTP receiver on 127.0.0.1:
signed, retried, logged, disabled when failing, capped, timed out, concurrency-capped."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import grpc
import pytest
import structlog

from paymesh.contracts.events import Event
from paymesh.contracts.webhooks.v1 import webhooks_pb2
from paymesh.platform.clock import SystemClock
from paymesh.platform.rpc import caller_options, error_code
from paymesh.webhooks.signature import NoMatchingSignature, verify
from paymesh.webhooks.worker import USER_AGENT
from tests.integration.webhooks.conftest import (
    ALICE,
    Receiver,
    Reply,
    StartWebhooks,
    payment_event,
    until,
)

pytestmark = pytest.mark.timeout(60)


class TickingClock:
    """The real time plus 10 s more at every reading: each attempt gets a new timestamp."""

    def __init__(self) -> None:
        self.value = SystemClock().now_us()

    def now_us(self) -> int:
        self.value += 10_000_000
        return self.value


class ManualClock:
    """Real time at start, then moved only by the test."""

    def __init__(self) -> None:
        self.value = SystemClock().now_us()

    def now_us(self) -> int:
        return self.value


def _t(header: str) -> int:
    return int(header.split(",")[0].removeprefix("t="))


async def test_an_event_is_delivered_signed_and_verifies_with_the_helper(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    created = await running.create(receiver.url, events=("payment.succeeded",))
    assert created.secret.startswith("whsec_")
    event = payment_event()
    await running.publish(event)
    [got] = await receiver.wait_for(1)
    assert got.body == event.to_json()
    verify(got.body, got.headers["paymesh-signature"], created.secret)
    assert got.headers["paymesh-event-id"] == event.id
    assert got.headers["paymesh-event-type"] == "payment.succeeded"
    assert got.headers["paymesh-delivery-id"].startswith("dlv_")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT
    assert Event.from_json(got.body) == event

    async def logged() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED

    await until(logged)


async def test_an_endpoint_receives_only_the_event_types_it_asked_for(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    await running.create(receiver.url, events=("refund.succeeded",))
    await running.publish(payment_event(1, type="payment.succeeded"))
    await running.publish(payment_event(2, type="refund.succeeded"))
    await receiver.wait_for(1)
    assert [r.headers["paymesh-event-type"] for r in receiver.requests] == ["refund.succeeded"]


async def test_a_receiver_failing_twice_gets_the_event_three_times_freshly_signed(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=[500, 503, 200][min(n, 2)])
    running = await start_webhooks(clock=TickingClock())
    created = await running.create(receiver.url)
    event = payment_event()
    await running.publish(event)
    got = await receiver.wait_for(3)
    stamps = [_t(r.headers["paymesh-signature"]) for r in got]
    assert stamps == sorted(set(stamps)), "every attempt is signed with a new timestamp"
    for r, t in zip(got, stamps, strict=True):
        assert r.body == event.to_json()
        verify(r.body, r.headers["paymesh-signature"], created.secret, now=t)
    assert len({r.headers["paymesh-signature"] for r in got}) == 3

    async def succeeded() -> bool:
        ds = await running.deliveries()
        return ds[0].status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED

    await until(succeeded)
    [delivery] = await running.deliveries()
    assert delivery.attempts_count == 3
    assert [a.number for a in delivery.attempts] == [1, 2, 3]
    assert [a.status_code for a in delivery.attempts] == [500, 503, 200]
    assert [a.error for a in delivery.attempts] == ["http_500", "http_503", ""]
    assert all(a.latency_ms >= 0 and a.started_at_us > 0 for a in delivery.attempts)
    assert len(receiver.requests) == 3


async def test_a_receiver_that_always_fails_ends_disabled_with_an_event_saying_so(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=500)
    running = await start_webhooks(disable_after_s=0.3, retry_max_delay_s=0.05)
    await running.create(receiver.url)
    ops = Receiver()
    await ops.start()
    await running.create(ops.url, id="we_ops", events=("webhook_endpoint.disabled",))
    await running.publish(payment_event(1))

    async def disabled() -> bool:
        ep = await running.stub.GetEndpoint(
            webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
        )
        return ep.status == webhooks_pb2.ENDPOINT_STATUS_DISABLED

    await until(disabled)
    ep = await running.stub.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    assert ep.disabled_reason.startswith("failing_since_")
    [delivery] = await running.deliveries()
    assert delivery.status == webhooks_pb2.DELIVERY_STATUS_FAILED
    assert delivery.attempts_count >= 2

    async def announced() -> bool:
        return any(e.type == "webhook_endpoint.disabled" for e in running.published)

    await until(announced)
    [note] = [e for e in running.published if e.type == "webhook_endpoint.disabled"]
    assert note.tenant == "ten_alice"
    assert note.subject == "we_1"
    assert note.data["id"] == "we_1"
    assert note.data["url"] == receiver.url
    assert note.data["reason"] == ep.disabled_reason
    # The tenant's other endpoint that asked for it is told, signed like any event.
    try:
        [told] = await ops.wait_for(1)
    finally:
        await ops.stop()
    assert told.headers["paymesh-event-type"] == "webhook_endpoint.disabled"
    assert json.loads(told.body)["data"]["id"] == "we_1"

    # Disabled, it cannot be resent to; enabled again, it receives new events.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await running.stub.ResendEvent(
            webhooks_pb2.ResendEventRequest(endpoint_id="we_1", event_id=payment_event(1).id),
            **caller_options(ALICE, 10),
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(refused.value) == "webhook_endpoint_disabled"
    receiver.reply = lambda n: Reply(status=200)
    seen = len(receiver.requests)
    await running.stub.EnableEndpoint(
        webhooks_pb2.EnableEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    await running.publish(payment_event(2))
    got = await receiver.wait_for(seen + 1)
    assert got[-1].headers["paymesh-event-id"] == payment_event(2).id


async def test_a_success_resets_the_failing_clock(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    # Fails, succeeds, fails twice: 180 s since the first failure (over
    # disable_after_s) but only 60 s since the success, so it stays enabled.
    clock = ManualClock()
    receiver.reply = lambda n: Reply(status=[500, 200, 500, 500][min(n, 3)])
    running = await start_webhooks(clock=clock, disable_after_s=100, retry_base_s=1)
    await running.create(receiver.url)
    await running.publish(payment_event(1))
    await until(lambda: _attempts_are(running, [1]))
    clock.value += 60_000_000  # the retry is due; 60 s of failing so far
    await until(lambda: _attempts_are(running, [2]))
    clock.value += 60_000_000
    await running.publish(payment_event(2))
    await until(lambda: _attempts_are(running, [2, 1]))
    clock.value += 60_000_000  # 180 s since the first failure, 60 s since the success
    await until(lambda: _attempts_are(running, [2, 2]))
    ep = await running.stub.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    assert ep.status == webhooks_pb2.ENDPOINT_STATUS_ENABLED


async def _attempts_are(running, counts: list[int]) -> bool:  # type: ignore[no-untyped-def]
    ds = await running.deliveries()
    return [d.attempts_count for d in ds] == counts[::-1]


async def _status_is(running, endpoint_id: str, index: int, status: int) -> bool:  # type: ignore[no-untyped-def]
    ds = await running.deliveries(endpoint_id)
    return len(ds) > index and ds[-1 - index].status == status


async def test_rotation_signs_with_both_secrets_during_the_grace_then_only_the_new(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    clock = ManualClock()
    running = await start_webhooks(clock=clock)
    old = (await running.create(receiver.url)).secret
    rotated = await running.stub.RotateSecret(
        webhooks_pb2.RotateSecretRequest(id="we_1", grace_period_s=3600),
        **caller_options(ALICE, 10),
    )
    new = rotated.secret
    assert new != old
    assert new.startswith("whsec_")
    assert rotated.endpoint.previous_secret_expires_at_us == clock.value + 3600 * 1_000_000
    await running.publish(payment_event(1))
    [during] = await receiver.wait_for(1)
    header = during.headers["paymesh-signature"]
    assert header.count("v1=") == 2
    verify(during.body, header, old, now=_t(header))  # a merchant not yet updated
    verify(during.body, header, new, now=_t(header))
    verify(during.body, header, [new, old], now=_t(header))

    clock.value += 3601 * 1_000_000
    ep = await running.stub.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    assert ep.previous_secret_expires_at_us == 0  # the old secret signs no more
    await running.publish(payment_event(2))
    after = (await receiver.wait_for(2))[1]
    header = after.headers["paymesh-signature"]
    assert header.count("v1=") == 1
    verify(after.body, header, new, now=_t(header))
    with pytest.raises(NoMatchingSignature):
        verify(after.body, header, old, now=_t(header))


async def test_a_huge_response_body_is_read_only_up_to_the_cap(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=200, endless_body=True)
    running = await start_webhooks(max_response_bytes=64 * 1024, request_timeout_s=20)
    await running.create(receiver.url)
    await running.publish(payment_event())
    await until(lambda: _status_is(running, "we_1", 0, webhooks_pb2.DELIVERY_STATUS_SUCCEEDED))
    [delivery] = await running.deliveries()
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(200, "")]
    # The receiver would send 512 MiB; the client stopped long before.
    assert receiver.body_bytes_sent < 64 * 1024 * 1024


async def test_a_slow_receiver_times_out(start_webhooks: StartWebhooks, receiver: Receiver) -> None:
    release = asyncio.Event()
    receiver.reply = lambda n: Reply(status=200, hold=release)
    running = await start_webhooks(request_timeout_s=0.3, retry_base_s=3600)
    await running.create(receiver.url)
    await running.publish(payment_event())

    async def attempted() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].attempts_count == 1

    try:
        await until(attempted)
    finally:
        release.set()
    [delivery] = await running.deliveries()
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(0, "timeout")]
    assert delivery.status == webhooks_pb2.DELIVERY_STATUS_PENDING


async def test_at_most_n_deliveries_are_in_flight_per_endpoint(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    release = asyncio.Event()
    receiver.reply = lambda n: Reply(status=200, hold=release)
    running = await start_webhooks(max_in_flight_per_endpoint=2)
    await running.create(receiver.url)
    for n in range(5):
        await running.publish(payment_event(n))
    await receiver.wait_for(2)

    async def five_pending() -> bool:
        return len(await running.deliveries()) == 5

    await until(five_pending)
    # Two are in flight: another look finds nothing it may start.
    assert await running.runtime.worker.run_once() == 0
    assert receiver.in_flight == 2
    release.set()
    await receiver.wait_for(5)
    assert receiver.max_in_flight == 2


async def test_a_name_that_resolves_to_a_private_address_after_creation_is_refused_at_delivery(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    # Public when the endpoint is made, loopback afterwards: every attempt checks again.
    answers = iter([["93.184.216.34"]])

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.merchant.test"
        return next(answers, ["127.0.0.1"])

    running = await start_webhooks(
        resolver=resolver, allow_private_addresses=False, retry_base_s=3600
    )
    url = f"http://hooks.merchant.test:{receiver.port}/hooks"
    await running.create(url)
    await running.publish(payment_event())

    async def attempted() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].attempts_count == 1

    await until(attempted)
    [delivery] = await running.deliveries()
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(0, "address_refused")]
    assert receiver.requests == []


async def test_the_same_url_is_delivered_to_the_resolved_address_when_operators_allow_it(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    # The host name exists only in the injected resolver: the connection goes to
    # the address that was checked, never to a second lookup.
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    running = await start_webhooks(resolver=resolver, allow_private_addresses=True)
    await running.create(f"http://hooks.merchant.test:{receiver.port}/hooks")
    await running.publish(payment_event())
    [got] = await receiver.wait_for(1)
    assert got.headers["host"] == f"hooks.merchant.test:{receiver.port}"


async def test_a_redelivered_event_makes_no_second_delivery(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    await running.create(receiver.url)
    first = payment_event(1)
    await running.publish(first)
    await running.publish(first)
    await running.publish(payment_event(2))  # behind both on the same queue
    await receiver.wait_for(2)

    async def two() -> bool:
        return len(await running.deliveries()) == 2

    await until(two)
    ids = sorted(d.event_id for d in await running.deliveries())
    assert ids == sorted([first.id, payment_event(2).id])
    assert [json.loads(r.body)["id"] for r in receiver.requests].count(first.id) == 1


async def test_resend_makes_a_new_delivery_with_a_fresh_signature(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks(clock=TickingClock())
    secret = (await running.create(receiver.url)).secret
    event = payment_event()
    await running.publish(event)
    [first] = await receiver.wait_for(1)
    resent = await running.stub.ResendEvent(
        webhooks_pb2.ResendEventRequest(endpoint_id="we_1", event_id=event.id),
        **caller_options(ALICE, 10),
    )
    assert resent.event_id == event.id
    assert resent.status == webhooks_pb2.DELIVERY_STATUS_PENDING
    second = (await receiver.wait_for(2))[1]
    assert second.body == first.body
    assert (
        second.headers["paymesh-delivery-id"] == resent.id != first.headers["paymesh-delivery-id"]
    )
    header = second.headers["paymesh-signature"]
    assert header != first.headers["paymesh-signature"]
    verify(second.body, header, secret, now=_t(header))


async def test_deleting_an_endpoint_stops_its_pending_deliveries(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=500)
    running = await start_webhooks(retry_base_s=3600)
    await running.create(receiver.url)
    await running.publish(payment_event())
    await receiver.wait_for(1)

    async def attempted() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].attempts_count == 1

    await until(attempted)
    [pending] = await running.deliveries()
    assert pending.status == webhooks_pb2.DELIVERY_STATUS_PENDING
    deleted = await running.stub.DeleteEndpoint(
        webhooks_pb2.DeleteEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    assert deleted.status == webhooks_pb2.ENDPOINT_STATUS_DISABLED
    assert deleted.disabled_reason == "deleted"
    [failed], _ = await running.runtime.store.list_deliveries("we_1", limit=10, starting_after="")
    assert failed.status.value == "failed"


async def test_an_endpoint_made_while_private_addresses_were_allowed_is_refused_at_delivery(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    # Made on localhost while operators allowed it; the setting is then turned off.
    lenient = await start_webhooks(allow_private_addresses=True)
    await lenient.create(f"http://localhost:{receiver.port}/hooks")
    await lenient.runtime.stop()
    running = await start_webhooks(allow_private_addresses=False, retry_base_s=3600)
    await running.publish(payment_event())

    async def attempted() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].attempts_count == 1

    await until(attempted)
    [delivery] = await running.deliveries()
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(0, "address_refused")]
    assert receiver.requests == []


@pytest.fixture
def all_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log entry at every level, as raw fields before any redaction."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


async def test_no_secret_signature_or_url_query_reaches_the_logs(
    start_webhooks: StartWebhooks,
    receiver: Receiver,
    all_logs: list[MutableMapping[str, Any]],
) -> None:
    receiver.reply = lambda n: Reply(status=[500, 200, 200][min(n, 2)])
    running = await start_webhooks()
    created = await running.create(receiver.url)  # the URL carries ?token=sekrit
    rotated = await running.stub.RotateSecret(
        webhooks_pb2.RotateSecretRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    await running.publish(payment_event(1))
    got = await receiver.wait_for(2)
    await until(lambda: _status_is(running, "we_1", 0, webhooks_pb2.DELIVERY_STATUS_SUCCEEDED))
    text = "\n".join(str(entry) for entry in all_logs)
    assert "webhook_attempt" in text
    assert "we_1" in text
    for forbidden in (created.secret, rotated.secret, "sekrit", receiver.url):
        assert forbidden not in text
    for r in got:
        for part in r.headers["paymesh-signature"].split(","):
            assert part.split("=", 1)[1] not in text


@pytest.mark.postgres
async def test_two_replicas_on_one_postgresql_deliver_each_event_once_within_the_cap(
    start_webhooks: StartWebhooks, receiver: Receiver, pg_url: str
) -> None:
    release = asyncio.Event()
    receiver.reply = lambda n: Reply(status=200, hold=release)
    one = await start_webhooks(database_url=pg_url, max_in_flight_per_endpoint=3)
    two = await start_webhooks(database_url=pg_url, max_in_flight_per_endpoint=3)
    await one.create(receiver.url)
    for n in range(20):
        await one.publish(payment_event(n))
    await receiver.wait_for(3)
    # Three are in flight, wherever they run: neither replica may start another.
    assert await one.runtime.worker.run_once() == 0
    assert await two.runtime.worker.run_once() == 0
    release.set()
    got = await receiver.wait_for(20)

    async def all_succeeded() -> bool:
        ds = await one.deliveries()
        return len(ds) == 20 and all(d.status == webhooks_pb2.DELIVERY_STATUS_SUCCEEDED for d in ds)

    await until(all_succeeded)
    ids = [r.headers["paymesh-event-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 20
    assert receiver.max_in_flight <= 3
    assert len(got) == 20


async def test_redirects_are_not_followed_and_count_as_failures(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    receiver.reply = lambda n: Reply(status=307, location=f"http://127.0.0.1:{receiver.port}/b")
    running = await start_webhooks(retry_base_s=3600)
    await running.create(receiver.url)
    await running.publish(payment_event())

    async def attempted() -> bool:
        ds = await running.deliveries()
        return bool(ds) and ds[0].attempts_count == 1

    await until(attempted)
    [delivery] = await running.deliveries()
    assert [(a.status_code, a.error) for a in delivery.attempts] == [(307, "http_307")]
    assert delivery.status == webhooks_pb2.DELIVERY_STATUS_PENDING
    assert len(receiver.requests) == 1
