"""Webhooks in the distributed shape: a payment made through the gateway, across one
process per service on PostgreSQL and Kafka, reaches a merchant's receiver as a
signed payment.succeeded that the public helper verifies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .receiver import Receiver
from .test_distributed import Distributed, distributed_platform
from .test_webhooks_e2e import payment_webhook_arrives_signed


@pytest.fixture(scope="module")
def distributed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Distributed]:
    """Every service as its own process (one platform for this module: each costs ~25 s)."""
    workdir: Path = tmp_path_factory.mktemp("distributed-webhooks")
    with distributed_platform(workdir, kafka_bootstrap) as platform:
        yield platform


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def test_a_payment_through_the_gateway_arrives_as_a_signed_webhook(
    distributed: Distributed, receiver: Receiver
) -> None:
    await payment_webhook_arrives_signed(distributed, receiver)


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_distributed_webhooks")
