"""Risk in the distributed shape: velocity counted in Redis, a velocity decline through the
gateway with its reason, and a rules file change that decides the next payment without a
restart, across the four processes on PostgreSQL and Kafka."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .conftest import Api
from .test_distributed import Distributed, distributed_platform
from .test_risk_e2e import VELOCITY_RULES, balance, funded_pair, pay, until, write_rules

REDIS_URL = "redis://127.0.0.1:6379/0"

# The velocity rule, and payments over 5 000 USD go to a human.
REVIEW_RULE = """\
  - id: large-needs-review
    kind: amount_limit
    max_amount: {USD: 5000}
    action: review
    reason: amount_needs_review
"""


def rules_yaml(max_count: int) -> str:
    return VELOCITY_RULES.format(max_count=max_count) + REVIEW_RULE


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the real Redis; its keys are deleted afterwards."""
    prefix = f"paymesh:test:risk:{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("risk-rules") / "rules.yaml"
    write_rules(path, rules_yaml(3))
    return path


@pytest.fixture(scope="module")
def risky(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    redis_prefix: str,
    rules_file: Path,
) -> Iterator[Distributed]:
    """The four services as processes, risk reading a rules file and counting in Redis."""
    env = {
        "PAYMESH_RISK__REDIS_URL": REDIS_URL,
        "PAYMESH_RISK__REDIS_PREFIX": redis_prefix,
        "PAYMESH_RISK__RULES_FILE": str(rules_file),
        "PAYMESH_RISK__RULES_RELOAD_INTERVAL_S": "0.2",
    }
    workdir = tmp_path_factory.mktemp("distributed-risk")
    with distributed_platform(workdir, kafka_bootstrap, env=env) as platform:
        yield platform


def _redis_keys(prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=prefix + "*"))
    finally:
        client.close()


async def test_a_velocity_decline_reaches_the_client_with_its_reason_and_the_rules_reload(
    risky: Distributed, rules_file: Path, redis_prefix: str
) -> None:
    api = await Api.login(risky.url, risky.creds["client_id"], risky.creds["client_secret"])
    try:
        rules = await api.get("/v1/risk/rules")
        assert rules["checksum"] == hashlib.sha256(rules_file.read_bytes()).hexdigest()
        assert rules["source"] == str(rules_file)

        payer, payee = await funded_pair(api)
        for _ in range(3):
            assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"
        # The windows live in Redis, under this test's prefix.
        assert _redis_keys(redis_prefix)
        before = await balance(api, payer)

        fourth = await pay(api, payer, payee, 1_000)
        fetched = await api.get(f"/v1/payments/{fourth['id']}")
        assert (fetched["status"], fetched["failure_code"]) == ("failed", "risk_declined")
        assert fetched["risk"]["decision"] == "decline"
        assert fetched["risk"]["reasons"] == ["velocity_payer_count"]
        assert await balance(api, payer) == before

        raised = write_rules(rules_file, rules_yaml(10))
        await until(lambda: api.get("/v1/risk/rules"), lambda r: r["checksum"] == raised)
        assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"
    finally:
        await api.close()


async def test_reviews_resolved_through_the_gateway_reach_payments_over_kafka(
    risky: Distributed,
) -> None:
    api = await Api.login(risky.url, risky.creds["client_id"], risky.creds["client_secret"])
    try:
        payer, payee = await funded_pair(api, 20_000)
        approved = await pay(api, payer, payee, 6_000)
        declined = await pay(api, payer, payee, 7_000)
        assert (approved["status"], declined["status"]) == ("in_review", "in_review")
        assert await balance(api, payer) == {
            "available": 7_000,
            "pending": -13_000,
            "posted": 20_000,
        }
        queue = await api.get("/v1/reviews?limit=100")
        assert {approved["id"], declined["id"]} <= {r["payment_id"] for r in queue["data"]}

        await api.post(f"/v1/reviews/{approved['id']}/approve", {}, status=200)
        await api.post(f"/v1/reviews/{declined['id']}/decline", {"note": "fraud"}, status=200)
        done = await until(
            lambda: api.get(f"/v1/payments/{approved['id']}"),
            lambda p: p["status"] == "succeeded",
        )
        assert done["amount_captured"] == 6_000
        failed = await until(
            lambda: api.get(f"/v1/payments/{declined['id']}"),
            lambda p: p["status"] == "failed",
        )
        assert failed["failure_code"] == "risk_declined"
        assert await balance(api, payer) == {"available": 14_000, "pending": 0, "posted": 14_000}
        assert (await balance(api, payee))["posted"] == 6_000
    finally:
        await api.close()


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_distributed_risk")
