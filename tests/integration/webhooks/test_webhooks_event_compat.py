"""Forward and backward compatibility of events, through the webhooks service's real
consumer: on a real Kafka-protocol broker, records in the CloudEvents binding's
structured and binary modes and records from before the binding (a rolling upgrade)
are all delivered; on either bus, an event type this version does not know is
skipped and fields it does not know travel on untouched."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Producer

from paymesh.contracts.events import PAYMENT_SUCCEEDED, TOPIC_PAYMENTS, TOPIC_WEBHOOKS, Event
from paymesh.platform.identity import Caller
from paymesh.platform.kafka import KafkaBus, KafkaOptions
from paymesh.settings import Settings
from paymesh.webhooks import app
from paymesh.webhooks.domain import CreateEndpoint
from paymesh.webhooks.service import create_endpoint
from tests.conftest import free_port
from tests.integration.webhooks.conftest import Receiver, StartWebhooks, payment_event

# A type a later version of paymesh may publish; this one does not know it.
FUTURE_TYPE = "payment.partially_refunded"


def _with_unknown_fields(event: Event) -> Event:
    data = {**event.data, "surcharge": {"amount": 5, "currency": "USD"}}
    return Event(**{**event.__dict__, "data": data})


async def test_on_the_in_process_bus_an_unknown_type_is_skipped_and_unknown_fields_kept(
    start_webhooks: StartWebhooks, receiver: Receiver
) -> None:
    running = await start_webhooks()
    await running.create(receiver.url)
    future = payment_event(1, type=FUTURE_TYPE)
    known = _with_unknown_fields(payment_event(2))
    await running.publish(future)
    await running.publish(known)
    got = await receiver.wait_for(1)
    await asyncio.sleep(0.5)  # room for a wrong second delivery to arrive
    assert len(receiver.requests) == 1
    assert json.loads(got[0].body) == json.loads(known.to_json())
    assert not running.bus.dead_letters
    assert running.bus.healthy()


@pytest.fixture
async def kafka_bus(kafka_bootstrap: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        KafkaOptions(
            bootstrap_servers=kafka_bootstrap,
            session_timeout_ms=6_000,
            max_poll_interval_ms=10_000,
            retry_delay_s=0.05,
            namespace=f"compat{secrets.token_hex(3)}",
        )
    )
    yield bus
    await bus.stop()


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list]]) -> None:  # type: ignore[type-arg]
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_on_kafka_old_structured_and_binary_records_are_delivered_and_unknown_types_not(
    kafka_bus: KafkaBus, kafka_bootstrap: str, pg_url: str, receiver: Receiver, tmp_path: Path
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
        await create_endpoint(
            CreateEndpoint(id="we_c", tenant_id=tenant, url=receiver.url, events=("*",)),
            caller=Caller(tenant_id=tenant, client_id="test"),
            deps=runtime.deps,
        )
        # All about one payment: one partition, so they arrive in this order.
        old = payment_event(1, tenant=tenant)
        future = Event(**{**payment_event(2, tenant=tenant).__dict__, "type": FUTURE_TYPE})
        binary = _with_unknown_fields(payment_event(3, tenant=tenant))
        sdk_binary = ce_kafka.to_binary(
            CloudEvent(
                attributes={
                    "id": binary.id, "source": binary.source, "type": PAYMENT_SUCCEEDED,
                    "subject": "pay_1", "time": datetime(2026, 1, 1, tzinfo=UTC), "tenant": tenant,
                    "datacontenttype": "application/json", "newattribute": "from-the-future",
                },
                data=binary.data,
            ),
            JSONFormat(),
        )  # fmt: skip
        key = b"pay_1"
        topic = f"{kafka_bus._physical(TOPIC_PAYMENTS)}"
        _produce(
            kafka_bootstrap,
            topic,
            [
                # paymesh before the binding: the envelope, ce_id/ce_type/ce_tenant headers.
                (key, old.to_json(), [("ce_id", old.id), ("ce_type", old.type),
                                      ("ce_tenant", tenant)]),
                # structured mode, a type this version does not know.
                (key, future.to_json(),
                 [("content-type", b"application/cloudevents+json")]),
                # binary mode, with an attribute and data fields this version does not know.
                (key, sdk_binary.value, list(sdk_binary.headers.items())),
            ],
        )  # fmt: skip
        got = await receiver.wait_for(2, timeout_s=60)
        await asyncio.sleep(1.0)  # room for a wrong third delivery to arrive
        assert len(receiver.requests) == 2
        bodies = [json.loads(r.body) for r in got]
        assert [b["id"] for b in bodies] == [old.id, binary.id]
        assert bodies[0] == json.loads(old.to_json())
        assert bodies[1]["data"] == binary.data  # the unknown fields included
        assert kafka_bus.healthy()
    finally:
        await runtime.stop()
