"""The webhooks gRPC API over a real channel: endpoints made once per id, validated URLs,
the secret shown only on creation and rotation, and every RPC confined to the caller's tenant."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from paymesh.contracts.webhooks.v1 import webhooks_pb2
from paymesh.platform.rpc import caller_options, error_code
from tests.integration.webhooks.conftest import (
    ALICE,
    BOB,
    Receiver,
    Running,
    StartWebhooks,
    payment_event,
    until,
)

pytestmark = pytest.mark.timeout(60)


async def _fails(call, status: grpc.StatusCode, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == status
    assert error_code(info.value) == code


async def test_the_same_id_and_fields_answer_the_same_endpoint_and_other_fields_conflict(
    start_webhooks: StartWebhooks,
) -> None:
    running = await start_webhooks()
    first = await running.create("https://merchant.example/hooks", events=("payment.succeeded",))
    again = await running.create("https://merchant.example/hooks", events=("payment.succeeded",))
    assert again.endpoint == first.endpoint
    assert again.secret == first.secret
    assert first.endpoint.status == webhooks_pb2.ENDPOINT_STATUS_ENABLED
    assert list(first.endpoint.events) == ["payment.succeeded"]
    await _fails(
        running.create("https://merchant.example/other"),
        grpc.StatusCode.ALREADY_EXISTS,
        "webhook_endpoint_exists",
    )
    # Another tenant cannot take (or read) the id either.
    await _fails(
        running.create("https://merchant.example/hooks", caller=BOB, events=("payment.succeeded",)),
        grpc.StatusCode.ALREADY_EXISTS,
        "webhook_endpoint_exists",
    )


async def test_the_secret_is_never_in_the_endpoint_the_reads_answer(
    start_webhooks: StartWebhooks,
) -> None:
    running = await start_webhooks()
    created = await running.create("https://merchant.example/hooks")
    got = await running.stub.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    listed = await running.stub.ListEndpoints(
        webhooks_pb2.ListEndpointsRequest(), **caller_options(ALICE, 10)
    )
    for message in (got, listed):
        assert created.secret not in str(message)
        assert created.secret.encode() not in message.SerializeToString()


@pytest.mark.parametrize(
    ("url", "environment"),
    [
        ("http://merchant.example/hooks", "production"),
        ("ftp://merchant.example/hooks", "development"),
        ("file:///etc/passwd", "development"),
        ("https://user:pass@merchant.example/hooks", "development"),
        ("https://merchant.example@evil.example/hooks", "development"),
        ("https://" + "a" * 2040 + ".example/", "development"),
        ("https:///nohost", "development"),
        ("https://merchant.example/hooks#frag", "development"),
        ("https://merchant.example:0/hooks", "development"),
        ("https://merchant example/hooks", "development"),
    ],
)
async def test_unsafe_or_malformed_urls_are_refused(
    start_webhooks: StartWebhooks, url: str, environment: str
) -> None:
    running = await start_webhooks(environment=environment)
    await _fails(running.create(url), grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")


async def _public_dns(host: str, port: int) -> list[str]:
    """A DNS with one public answer for every name (this machine has no internet)."""
    return ["93.184.216.34"]


async def _nip_io_dns(host: str, port: int) -> list[str]:
    """nip.io as it answers on the internet: ``<address>.nip.io`` is that address."""
    if host.endswith(".nip.io"):
        return [host.removesuffix(".nip.io")]
    if host == "hooks.merchant.test":
        return ["93.184.216.34", "10.1.2.3"]
    raise OSError(-2, "Name or service not known")


async def test_https_is_accepted_in_production_and_http_only_in_development(
    start_webhooks: StartWebhooks,
) -> None:
    production = await start_webhooks(
        environment="production", allow_private_addresses=False, resolver=_public_dns
    )
    made = await production.create("https://merchant.example/hooks")
    assert made.endpoint.url == "https://merchant.example/hooks"
    development = await start_webhooks(database_url=None)
    await development.create("http://merchant.example/hooks", id="we_dev")


async def test_a_literal_private_address_is_refused_at_creation_unless_allowed(
    start_webhooks: StartWebhooks,
) -> None:
    strict = await start_webhooks(allow_private_addresses=False)
    for n, url in enumerate(
        [
            "http://127.0.0.1/hooks",
            "http://10.0.0.8/hooks",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hooks",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]/",
            "http://100.64.0.1/",
        ]
    ):
        await _fails(
            strict.create(url, id=f"we_{n}"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_request"
        )
    await strict.create("http://93.184.216.34/hooks", id="we_public")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1.nip.io/hooks", "resolves to a loopback address (127.0.0.1)"),
        ("https://169.254.169.254.nip.io/", "resolves to a link-local address (169.254.169.254)"),
        ("https://hooks.merchant.test/", "resolves to a private address (10.1.2.3)"),
        ("https://gone.merchant.example/", "does not resolve"),
    ],
)
async def test_a_name_is_resolved_at_creation_and_refused_when_any_address_is_not_public(
    start_webhooks: StartWebhooks, url: str, why: str
) -> None:
    strict = await start_webhooks(allow_private_addresses=False, resolver=_nip_io_dns)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await strict.create(url)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(info.value) == "invalid_request"
    assert (info.value.details() or "").startswith("url refused: host ")
    assert why in (info.value.details() or "")
    await strict.create("https://93.184.216.34.nip.io/hooks", id="we_public")
    # Operators who allow private addresses (development) skip the check, DNS included.
    lenient = await start_webhooks(
        database_url=None, allow_private_addresses=True, resolver=_nip_io_dns
    )
    await lenient.create(url, id="we_lenient")


async def test_a_name_that_does_not_resolve_in_time_is_refused_at_creation(
    start_webhooks: StartWebhooks,
) -> None:
    async def silent_dns(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    strict = await start_webhooks(allow_private_addresses=False, resolver=silent_dns)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await strict.create("https://slow.merchant.example/hooks")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "did not resolve within" in (info.value.details() or "")
    # Bounded: below the gateway's 5 s deadline for the call.
    assert time.monotonic() - started < 4.5


async def test_unknown_event_types_are_refused(start_webhooks: StartWebhooks) -> None:
    running = await start_webhooks()
    await _fails(
        running.create("https://merchant.example/h", events=("payment.exploded",)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )
    await _fails(
        running.create("https://merchant.example/h", events=()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )
    await _fails(
        running.create("https://merchant.example/h", id="bad id!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )


async def test_a_call_without_a_caller_is_unauthenticated(start_webhooks: StartWebhooks) -> None:
    running = await start_webhooks()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await running.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_tenants_endpoint_is_not_found_on_every_rpc(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    await running.create(receiver.url)
    event = payment_event()
    await running.publish(event)
    await receiver.wait_for(1)
    bob = caller_options(BOB, 10)
    not_found = (grpc.StatusCode.NOT_FOUND, "webhook_endpoint_not_found")
    calls = [
        running.stub.GetEndpoint(webhooks_pb2.GetEndpointRequest(id="we_1"), **bob),
        running.stub.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(id="we_1"), **bob),
        running.stub.RotateSecret(webhooks_pb2.RotateSecretRequest(id="we_1"), **bob),
        running.stub.EnableEndpoint(webhooks_pb2.EnableEndpointRequest(id="we_1"), **bob),
        running.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(endpoint_id="we_1"), **bob),
        running.stub.ResendEvent(
            webhooks_pb2.ResendEventRequest(endpoint_id="we_1", event_id=event.id), **bob
        ),
    ]
    for call in calls:
        await _fails(call, *not_found)
    listed = await running.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), **bob)
    assert list(listed.data) == []
    # Bob's own endpoint cannot be fed Alice's event.
    await running.create(receiver.url, caller=BOB, id="we_bob")
    await _fails(
        running.stub.ResendEvent(
            webhooks_pb2.ResendEventRequest(endpoint_id="we_bob", event_id=event.id), **bob
        ),
        grpc.StatusCode.NOT_FOUND,
        "event_not_found",
    )
    # Alice's endpoint is untouched by all of that.
    ep = await running.stub.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    assert ep.status == webhooks_pb2.ENDPOINT_STATUS_ENABLED
    assert ep.previous_secret_expires_at_us == 0


async def test_a_tenants_events_reach_only_its_own_endpoints(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    await running.create(receiver.url + "&who=alice")
    await running.create(receiver.url + "&who=bob", caller=BOB, id="we_bob")
    await running.publish(payment_event(1, tenant="ten_bob"))
    await running.publish(payment_event(2, tenant="ten_alice"))
    got = await receiver.wait_for(2)
    assert sorted(r.headers["paymesh-event-id"] for r in got) == sorted(
        [payment_event(1).id, payment_event(2).id]
    )

    async def both_logged() -> bool:
        return (
            len(await running.deliveries()) == 1
            and len(await running.deliveries("we_bob", BOB)) == 1
        )

    await until(both_logged)
    [alice_delivery] = await running.deliveries()
    [bob_delivery] = await running.deliveries("we_bob", BOB)
    assert alice_delivery.event_id == payment_event(2).id
    assert bob_delivery.event_id == payment_event(1, tenant="ten_bob").id


async def test_endpoints_are_listed_newest_first_a_page_at_a_time(
    start_webhooks: StartWebhooks,
) -> None:
    running = await start_webhooks()
    for n in range(5):
        await running.create(f"https://merchant.example/{n}", id=f"we_{n}")
    seen: list[str] = []
    after = ""
    while True:
        page = await running.stub.ListEndpoints(
            webhooks_pb2.ListEndpointsRequest(limit=2, starting_after=after),
            **caller_options(ALICE, 10),
        )
        seen += [e.id for e in page.data]
        if not page.has_more:
            break
        after = page.data[-1].id
    assert seen == [f"we_{n}" for n in reversed(range(5))]
    await _fails(
        running.stub.ListEndpoints(
            webhooks_pb2.ListEndpointsRequest(limit=101), **caller_options(ALICE, 10)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )


async def test_a_deleted_endpoint_is_gone_and_its_id_stays_taken(
    start_webhooks: StartWebhooks,
) -> None:
    running: Running = await start_webhooks()
    await running.create("https://merchant.example/hooks")
    await running.stub.DeleteEndpoint(
        webhooks_pb2.DeleteEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    await _fails(
        running.stub.GetEndpoint(
            webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
        ),
        grpc.StatusCode.NOT_FOUND,
        "webhook_endpoint_not_found",
    )
    await _fails(
        running.create("https://merchant.example/hooks"),
        grpc.StatusCode.ALREADY_EXISTS,
        "webhook_endpoint_exists",
    )


async def test_rotation_grace_out_of_range_is_refused(start_webhooks: StartWebhooks) -> None:
    running = await start_webhooks()
    await running.create("https://merchant.example/hooks")
    for grace in (-1, 7 * 24 * 3600 + 1):
        await _fails(
            running.stub.RotateSecret(
                webhooks_pb2.RotateSecretRequest(id="we_1", grace_period_s=grace),
                **caller_options(ALICE, 10),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
        )


async def test_rotation_without_a_grace_uses_the_configured_default(
    start_webhooks: StartWebhooks,
) -> None:
    running = await start_webhooks(rotation_grace_s=120)
    await running.create("https://merchant.example/hooks")
    before = (
        await running.stub.GetEndpoint(
            webhooks_pb2.GetEndpointRequest(id="we_1"), **caller_options(ALICE, 10)
        )
    ).created_at_us
    rotated = await running.stub.RotateSecret(
        webhooks_pb2.RotateSecretRequest(id="we_1"), **caller_options(ALICE, 10)
    )
    expires = rotated.endpoint.previous_secret_expires_at_us
    assert before + 120 * 1_000_000 <= expires < before + 180 * 1_000_000
