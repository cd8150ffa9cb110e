"""The risk service over real gRPC: app.create on SQLite, a real channel with a caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paymesh.contracts.events import TOPIC_RISK, Event
from paymesh.contracts.risk.v1 import risk_pb2, risk_pb2_grpc
from paymesh.platform.bus import InProcessBus
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code, open_channel
from paymesh.risk import app
from paymesh.settings import Settings

ALICE = Caller(tenant_id="ten_alice", client_id="cli_a", scopes=frozenset({"payments:write"}))
BOB = Caller(tenant_id="ten_bob", client_id="cli_b")


@dataclass
class Running:
    stub: risk_pb2_grpc.RiskAsyncStub
    channel: grpc.aio.Channel
    events: asyncio.Queue[Event]


@pytest.fixture
async def risk(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[Running]:
    # `ports` comes from conftest.free_port().
    settings = Settings(
        var_dir=tmp_path,
        risk={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'risk.db'}",
            "listen": f"127.0.0.1:{ports['risk']}",
            "amount_limits": {"USD": 10_000},
            "default_amount_limit": 5_000,
        },
    )
    await app.migrate(settings)
    bus = InProcessBus()
    events: asyncio.Queue[Event] = asyncio.Queue()

    async def collect(event: Event) -> None:
        events.put_nowait(event)

    bus.subscribe(TOPIC_RISK, "test", collect)
    await bus.start()
    runtime = app.create(settings, bus=bus)
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    try:
        yield Running(risk_pb2_grpc.RiskStub(channel), channel, events)  # type: ignore[arg-type]
    finally:
        await channel.close()
        await runtime.stop()
        await bus.stop()


def request(
    amount: int, payment_id: str = "pay_1", currency: str = "USD"
) -> risk_pb2.DecideRequest:
    return risk_pb2.DecideRequest(
        payment_id=payment_id,
        payer_account_id="acct_a",
        payee_account_id="acct_b",
        amount=amount,
        currency=currency,
        context=risk_pb2.PaymentContext(ip="192.0.2.1", device_id="dev_1", country="US"),
    )


async def test_an_amount_at_the_limit_is_approved(risk: Running) -> None:
    decision = await risk.stub.Decide(request(10_000), **caller_options(ALICE, 10))
    assert decision.payment_id == "pay_1"
    assert decision.outcome == risk_pb2.OUTCOME_APPROVE
    assert decision.score == 0
    assert list(decision.reasons) == []
    assert len(decision.rules_version) == 12
    assert decision.decided_at_us > 0


async def test_an_amount_over_the_limit_is_declined_with_a_reason_and_an_event(
    risk: Running,
) -> None:
    decision = await risk.stub.Decide(request(5_001, currency="EUR"), **caller_options(ALICE, 10))
    assert decision.outcome == risk_pb2.OUTCOME_DECLINE
    assert decision.score == 100
    [reason] = decision.reasons
    assert (reason.code, reason.rule_id) == ("amount_over_limit", "amount_limit")
    event = await asyncio.wait_for(risk.events.get(), 10)
    assert (event.type, event.subject, event.tenant) == (
        "risk.decision_made",
        "pay_1",
        "ten_alice",
    )
    assert event.data["outcome"] == "decline"


async def test_asking_again_answers_the_same_decision(risk: Running) -> None:
    first = await risk.stub.Decide(request(20_000), **caller_options(ALICE, 10))
    again = await risk.stub.Decide(request(1), **caller_options(ALICE, 10))
    read = await risk.stub.GetDecision(
        risk_pb2.GetDecisionRequest(payment_id="pay_1"), **caller_options(ALICE, 10)
    )
    assert again == first
    assert read == first


async def test_another_tenant_gets_not_found_for_a_decided_payment(risk: Running) -> None:
    await risk.stub.Decide(request(100), **caller_options(ALICE, 10))
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await risk.stub.GetDecision(
            risk_pb2.GetDecisionRequest(payment_id="pay_1"), **caller_options(BOB, 10)
        )
    assert got.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(got.value) == "decision_not_found"
    with pytest.raises(grpc.aio.AioRpcError) as decided:
        await risk.stub.Decide(request(100), **caller_options(BOB, 10))
    assert decided.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_tenant_id_other_than_the_callers_is_refused(risk: Running) -> None:
    req = request(100)
    req.tenant_id = BOB.tenant_id
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await risk.stub.Decide(req, **caller_options(ALICE, 10))
    assert got.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code(got.value) == "tenant_mismatch"
    req.tenant_id = ALICE.tenant_id
    decision = await risk.stub.Decide(req, **caller_options(ALICE, 10))
    assert decision.outcome == risk_pb2.OUTCOME_APPROVE


@pytest.mark.parametrize(
    "bad",
    [request(100, payment_id=""), request(0), request(-1), request(100, currency="XYZ")],
)
async def test_a_malformed_request_is_an_invalid_argument(
    risk: Running, bad: risk_pb2.DecideRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await risk.stub.Decide(bad, **caller_options(ALICE, 10))
    assert got.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(got.value) == "invalid_request"


async def test_a_call_without_a_caller_is_unauthenticated(risk: Running) -> None:
    for call in (
        risk.stub.Decide(request(100), timeout=10),
        risk.stub.GetDecision(risk_pb2.GetDecisionRequest(payment_id="pay_1"), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await call
        assert got.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_code(got.value) == "unauthenticated"


async def test_the_health_service_reports_serving(risk: Running) -> None:
    health = health_pb2_grpc.HealthStub(risk.channel)
    for service in ("", "paymesh.risk.v1.Risk"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
