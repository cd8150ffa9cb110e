"""The distributed shape: the webhooks service on PostgreSQL consuming payment events
from a real Kafka-protocol broker; a redelivered event makes no second delivery."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paymesh.contracts.events import TOPIC_PAYMENTS, TOPIC_WEBHOOKS
from paymesh.platform.identity import Caller
from paymesh.platform.kafka import KafkaBus, KafkaOptions
from paymesh.settings import Settings
from paymesh.webhooks import app
from paymesh.webhooks.domain import CreateEndpoint
from paymesh.webhooks.service import create_endpoint
from paymesh.webhooks.signature import verify
from tests.conftest import free_port
from tests.integration.webhooks.conftest import Receiver, payment_event, until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
async def kafka_bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        KafkaOptions(
            bootstrap_servers=kafka_bootstrap,
            session_timeout_ms=6_000,
            max_poll_interval_ms=10_000,
            retry_delay_s=0.05,
        )
    )
    yield bus
    await bus.stop()


async def test_a_payment_event_redelivered_by_kafka_is_delivered_to_the_merchant_once(
    kafka_bus: KafkaBus, pg_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    settings = Settings(
        var_dir=tmp_path,
        webhooks={
            "database_url": pg_url,
            "listen": f"127.0.0.1:{free_port()}",
            "allow_private_addresses": True,
            "poll_interval_s": 0.05,
        },
    )
    await app.migrate(settings)
    runtime = app.create(settings, bus=kafka_bus)
    await kafka_bus.ensure_topics(TOPIC_PAYMENTS, TOPIC_WEBHOOKS)
    await kafka_bus.start()
    await runtime.start()
    try:
        tenant = f"ten_{secrets.token_hex(4)}"
        _, secret = await create_endpoint(
            CreateEndpoint(id="we_k", tenant_id=tenant, url=receiver.url, events=("*",)),
            caller=Caller(tenant_id=tenant, client_id="test"),
            deps=runtime.deps,
        )
        first, barrier = payment_event(1, tenant=tenant), payment_event(2, tenant=tenant)
        # Same subject: one partition, so the barrier comes after both copies.
        barrier = dataclasses.replace(barrier, subject=first.subject)
        for event in (first, first, barrier):
            await kafka_bus.publish(TOPIC_PAYMENTS, event)
        await receiver.wait_for(2, timeout_s=60)

        async def both_logged() -> bool:
            found, _ = await runtime.store.list_deliveries("we_k", limit=10, starting_after="")
            return len(found) == 2 and all(d.status.value == "succeeded" for d in found)

        await until(both_logged, timeout_s=60)
        ids = [r.headers["paymesh-event-id"] for r in receiver.requests]
        assert sorted(ids) == sorted([first.id, barrier.id])
        for r in receiver.requests:
            verify(r.body, r.headers["paymesh-signature"], secret)
    finally:
        await runtime.stop()
