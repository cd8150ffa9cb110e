"""The risk service's rules, lists and review queue over real gRPC, with a real rules
file, on SQLite and PostgreSQL: hot reload, list entries effective at once, review
resolution with its events, scopes and tenancy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from structlog.testing import capture_logs

from paymesh.contracts.events import TOPIC_RISK, Event
from paymesh.contracts.risk.v1 import risk_pb2, risk_pb2_grpc
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import caller_options, error_code, open_channel
from paymesh.risk import app
from paymesh.risk.app import RiskRuntime
from paymesh.risk.errors import RulesInvalid
from paymesh.risk.tables import outbox
from paymesh.settings import Settings
from tests.conftest import free_port
from tests.fakes.clock import FixedClock

ADMIN = Caller(tenant_id="ten_alice", client_id="cli_ops", scopes=frozenset({"risk:admin"}))
ALICE = Caller(tenant_id="ten_alice", client_id="cli_a", scopes=frozenset({"payments:write"}))
BOB_ADMIN = Caller(tenant_id="ten_bob", client_id="cli_bob", scopes=frozenset({"risk:admin"}))

RULES_V1 = """\
version: "v1"
rules:
  - {id: trusted, kind: list, field: payer_account_id, list: trusted, action: allow,
     reason: trusted_account}
  - {id: block-ip, kind: list, field: ip, list: blocked_ips, action: decline, reason: ip_blocked}
  - {id: big, kind: amount_limit, max_amount: {USD: 5000}, action: review, reason: large_amount,
     description: needs a human}
  - {id: burst, kind: velocity, dimension: payer, window_s: 60, max_count: 3, action: decline,
     reason: velocity_payer_burst}
"""


@dataclass
class Running:
    stub: risk_pb2_grpc.RiskAsyncStub
    runtime: RiskRuntime
    events: asyncio.Queue[Event]
    rules_file: Path
    clock: FixedClock
    db_url: str

    def call(self, caller: Caller = ALICE) -> dict[str, object]:
        return dict(caller_options(caller, 10))

    async def decide(
        self, payment_id: str, amount: int = 100, payer: str = "acct_a", ip: str = "192.0.2.1"
    ) -> risk_pb2.Decision:
        request = risk_pb2.DecideRequest(
            payment_id=payment_id,
            payer_account_id=payer,
            payee_account_id="acct_shop",
            amount=amount,
            currency="USD",
            context=risk_pb2.PaymentContext(ip=ip, device_id="dev_1", country="US"),
        )
        return await self.stub.Decide(request, **caller_options(ALICE, 10))

    async def event(self, type: str) -> Event:
        while True:
            event = await asyncio.wait_for(self.events.get(), 10)
            if event.type == type:
                return event


@pytest.fixture
async def risk(db_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    rules_file = tmp_path / "risk-rules.yaml"
    rules_file.write_text(RULES_V1)
    settings = Settings(
        var_dir=tmp_path,
        risk={
            "database_url": db_url,
            "listen": f"127.0.0.1:{free_port()}",
            "rules_file": str(rules_file),
            "review_timeout_s": 3600,
        },
    )
    await app.migrate(settings)
    bus = InProcessBus()
    events: asyncio.Queue[Event] = asyncio.Queue()

    async def collect(event: Event) -> None:
        events.put_nowait(event)

    bus.subscribe(TOPIC_RISK, "test", collect)
    await bus.start()
    clock = FixedClock()
    runtime = app.create(settings, bus=bus, clock=clock)
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    try:
        yield Running(
            risk_pb2_grpc.RiskStub(channel),  # type: ignore[arg-type]
            runtime,
            events,
            rules_file,
            clock,
            db_url,
        )
    finally:
        await channel.close()
        await runtime.stop()
        await bus.stop()


async def test_get_rules_shows_the_files_version_checksum_source_and_rules(risk: Running) -> None:
    info = await risk.stub.GetRules(risk_pb2.GetRulesRequest(), **caller_options(ALICE, 10))
    assert info.version == "v1"
    assert len(info.checksum) == 64
    assert info.source == str(risk.rules_file)
    assert [(r.id, r.kind, r.action) for r in info.rules] == [
        ("trusted", "list", "allow"),
        ("block-ip", "list", "decline"),
        ("big", "amount_limit", "review"),
        ("burst", "velocity", "decline"),
    ]
    assert info.rules[2].description == "needs a human"
    assert info.last_error == ""
    decision = await risk.decide("pay_1")
    assert (decision.rules_version, decision.rules_checksum) == ("v1", info.checksum)


async def test_a_changed_valid_file_changes_the_next_decision(risk: Running) -> None:
    assert (await risk.decide("pay_1", amount=6000)).outcome == risk_pb2.OUTCOME_REVIEW
    risk.rules_file.write_text(RULES_V1.replace('"v1"', '"v2"').replace("USD: 5000", "USD: 9000"))
    assert risk.runtime.rules.check()
    decision = await risk.decide("pay_2", amount=6000)
    assert decision.outcome == risk_pb2.OUTCOME_APPROVE
    assert decision.rules_version == "v2"
    info = await risk.stub.GetRules(risk_pb2.GetRulesRequest(), **caller_options(ALICE, 10))
    assert info.version == "v2"


async def test_the_reloader_polls_the_file_by_itself(risk: Running) -> None:
    risk.rules_file.write_text(RULES_V1.replace('"v1"', '"v3"'))
    for _ in range(400):  # the file is polled every second
        info = await risk.stub.GetRules(risk_pb2.GetRulesRequest(), **caller_options(ALICE, 10))
        if info.version == "v3":
            break
        await asyncio.sleep(0.01)
    assert info.version == "v3"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("version: v9\nrules: [\n", "not valid YAML"),
        (RULES_V1.replace("kind: velocity", "kind: telepathy"), "telepathy"),
        (RULES_V1.replace("max_count: 3", "max_count: -3"), "max_count"),
        (RULES_V1.replace("window_s: 60", "window_s: 60, colour: red"), "colour"),
    ],
)
async def test_an_invalid_file_is_rejected_and_the_last_good_rules_stay(
    risk: Running, content: str, words: str
) -> None:
    before = await risk.stub.GetRules(risk_pb2.GetRulesRequest(), **caller_options(ALICE, 10))
    risk.rules_file.write_text(content)
    with capture_logs() as logs:
        assert not risk.runtime.rules.check()
    info = await risk.stub.GetRules(risk_pb2.GetRulesRequest(), **caller_options(ALICE, 10))
    assert (info.version, info.checksum) == ("v1", before.checksum)
    assert words in info.last_error
    assert info.last_error_at_us > 0
    assert (await risk.decide("pay_1", amount=6000)).outcome == risk_pb2.OUTCOME_REVIEW
    [line] = [entry for entry in logs if entry["event"] == "risk_rules_rejected"]
    assert line["path"] == str(risk.rules_file)
    assert words in line["error"]
    with capture_logs() as logs:  # the same bad file again: nothing more to say
        assert not risk.runtime.rules.check()
    assert logs == []


async def test_a_missing_rules_file_at_start_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        risk={"listen": f"127.0.0.1:{free_port()}", "rules_file": str(tmp_path / "nope.yaml")},
    )
    await app.migrate(settings)
    runtime = app.create(settings, bus=InProcessBus())
    with pytest.raises(RulesInvalid, match=r"nope\.yaml"):
        await runtime.start()
    await runtime.stop()


async def test_list_entries_are_effective_for_the_next_decision(risk: Running) -> None:
    assert (await risk.decide("pay_1", ip="203.0.113.9")).outcome == risk_pb2.OUTCOME_APPROVE
    entry = await risk.stub.AddListEntry(
        risk_pb2.AddListEntryRequest(list="blocked_ips", value="203.0.113.9", note="fraud ring"),
        **caller_options(ADMIN, 10),
    )
    assert (entry.list, entry.value, entry.created_by) == ("blocked_ips", "203.0.113.9", "cli_ops")
    blocked = await risk.decide("pay_2", ip="203.0.113.9")
    assert blocked.outcome == risk_pb2.OUTCOME_DECLINE
    assert [r.code for r in blocked.reasons] == ["ip_blocked"]
    listed = await risk.stub.ListListEntries(
        risk_pb2.ListListEntriesRequest(list="blocked_ips"), **caller_options(ALICE, 10)
    )
    assert [e.value for e in listed.data] == ["203.0.113.9"]
    removed = await risk.stub.RemoveListEntry(
        risk_pb2.RemoveListEntryRequest(list="blocked_ips", value="203.0.113.9"),
        **caller_options(ADMIN, 10),
    )
    assert removed.removed
    assert (await risk.decide("pay_3", ip="203.0.113.9")).outcome == risk_pb2.OUTCOME_APPROVE
    again = await risk.stub.RemoveListEntry(
        risk_pb2.RemoveListEntryRequest(list="blocked_ips", value="203.0.113.9"),
        **caller_options(ADMIN, 10),
    )
    assert not again.removed


async def test_another_tenants_list_entries_change_nothing_here(risk: Running) -> None:
    await risk.stub.AddListEntry(
        risk_pb2.AddListEntryRequest(list="blocked_ips", value="192.0.2.1"),
        **caller_options(BOB_ADMIN, 10),
    )
    assert (await risk.decide("pay_1")).outcome == risk_pb2.OUTCOME_APPROVE
    listed = await risk.stub.ListListEntries(
        risk_pb2.ListListEntriesRequest(), **caller_options(ALICE, 10)
    )
    assert list(listed.data) == []


async def test_an_allow_listed_payer_passes_velocity_but_not_a_block_list(risk: Running) -> None:
    for n in range(3):
        await risk.decide(f"pay_{n}")
    assert (await risk.decide("pay_3")).outcome == risk_pb2.OUTCOME_DECLINE  # 4th in a minute
    await risk.stub.AddListEntry(
        risk_pb2.AddListEntryRequest(list="trusted", value="acct_a"), **caller_options(ADMIN, 10)
    )
    allowed = await risk.decide("pay_4")
    assert allowed.outcome == risk_pb2.OUTCOME_APPROVE
    assert [r.code for r in allowed.reasons] == ["trusted_account"]
    await risk.stub.AddListEntry(
        risk_pb2.AddListEntryRequest(list="blocked_ips", value="192.0.2.1"),
        **caller_options(ADMIN, 10),
    )
    assert (await risk.decide("pay_5")).outcome == risk_pb2.OUTCOME_DECLINE


@pytest.mark.parametrize(
    "call",
    ["AddListEntry", "RemoveListEntry", "ListReviews", "GetReview", "ResolveReview"],
)
async def test_a_caller_without_risk_admin_is_refused(risk: Running, call: str) -> None:
    requests = {
        "AddListEntry": risk_pb2.AddListEntryRequest(list="blocked_ips", value="1.2.3.4"),
        "RemoveListEntry": risk_pb2.RemoveListEntryRequest(list="blocked_ips", value="1.2.3.4"),
        "ListReviews": risk_pb2.ListReviewsRequest(),
        "GetReview": risk_pb2.GetReviewRequest(payment_id="pay_1"),
        "ResolveReview": risk_pb2.ResolveReviewRequest(
            payment_id="pay_1", resolution=risk_pb2.RESOLUTION_APPROVE
        ),
    }
    await risk.decide("pay_1", amount=6000)  # in review
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await getattr(risk.stub, call)(requests[call], **caller_options(ALICE, 10))
    assert got.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code(got.value) == "insufficient_scope"
    review = await risk.stub.GetReview(
        risk_pb2.GetReviewRequest(payment_id="pay_1"), **caller_options(ADMIN, 10)
    )
    assert review.status == risk_pb2.REVIEW_STATUS_OPEN


async def test_a_review_decision_opens_a_review_that_an_operator_approves_once(
    risk: Running,
) -> None:
    decision = await risk.decide("pay_1", amount=6000)
    assert decision.outcome == risk_pb2.OUTCOME_REVIEW
    listed = await risk.stub.ListReviews(risk_pb2.ListReviewsRequest(), **caller_options(ADMIN, 10))
    [review] = listed.data
    assert (review.payment_id, review.tenant_id, review.amount) == ("pay_1", "ten_alice", 6000)
    assert review.status == risk_pb2.REVIEW_STATUS_OPEN
    assert review.decision == decision
    assert review.due_at_us == review.created_at_us + 3600 * 1_000_000
    resolve = risk_pb2.ResolveReviewRequest(
        payment_id="pay_1", resolution=risk_pb2.RESOLUTION_APPROVE, note="called the customer"
    )
    resolved = await risk.stub.ResolveReview(resolve, **caller_options(ADMIN, 10))
    assert resolved.status == risk_pb2.REVIEW_STATUS_APPROVED
    assert (resolved.resolved_by, resolved.note) == ("cli_ops", "called the customer")
    event = await risk.event("review.approved")
    assert (event.subject, event.tenant) == ("pay_1", "ten_alice")
    assert event.data == {
        "payment_id": "pay_1",
        "tenant_id": "ten_alice",
        "resolution": "approve",
        "resolved_by": "cli_ops",
        "note": "called the customer",
    }
    again = await risk.stub.ResolveReview(resolve, **caller_options(ADMIN, 10))
    assert again == resolved
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await risk.stub.ResolveReview(
            risk_pb2.ResolveReviewRequest(
                payment_id="pay_1", resolution=risk_pb2.RESOLUTION_DECLINE
            ),
            **caller_options(ADMIN, 10),
        )
    assert got.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(got.value) == "review_already_resolved"
    await risk.runtime.sweep_once()
    db = Database(risk.db_url)
    try:
        async with db.read() as conn:
            types = (await conn.execute(sa.select(outbox.c.type).order_by(outbox.c.seq))).scalars()
            assert list(types) == ["risk.decision_made", "review.approved"]
    finally:
        await db.dispose()
    assert (
        await risk.stub.ListReviews(risk_pb2.ListReviewsRequest(), **caller_options(ADMIN, 10))
    ).data == []


async def test_another_tenants_or_an_unknown_review_is_not_found(risk: Running) -> None:
    await risk.decide("pay_1", amount=6000)
    for caller, payment_id in ((BOB_ADMIN, "pay_1"), (ADMIN, "pay_unknown")):
        for call in (
            risk.stub.GetReview(
                risk_pb2.GetReviewRequest(payment_id=payment_id), **caller_options(caller, 10)
            ),
            risk.stub.ResolveReview(
                risk_pb2.ResolveReviewRequest(
                    payment_id=payment_id, resolution=risk_pb2.RESOLUTION_DECLINE
                ),
                **caller_options(caller, 10),
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as got:
                await call
            assert got.value.code() == grpc.StatusCode.NOT_FOUND
            assert error_code(got.value) == "review_not_found"
    review = await risk.stub.GetReview(
        risk_pb2.GetReviewRequest(payment_id="pay_1"), **caller_options(ADMIN, 10)
    )
    assert review.status == risk_pb2.REVIEW_STATUS_OPEN


async def test_an_overdue_review_gets_the_default_resolution_by_timeout(risk: Running) -> None:
    await risk.decide("pay_1", amount=6000)
    risk.clock.advance(3599)
    assert await risk.runtime.sweep_once() == 0
    risk.clock.advance(1)  # due exactly now
    assert await risk.runtime.sweep_once() == 1
    review = await risk.stub.GetReview(
        risk_pb2.GetReviewRequest(payment_id="pay_1"), **caller_options(ADMIN, 10)
    )
    assert review.status == risk_pb2.REVIEW_STATUS_DECLINED
    assert review.resolved_by == "timeout"
    event = await risk.event("review.declined")
    assert event.data["resolution"] == "decline"
    assert event.data["resolved_by"] == "timeout"
    assert await risk.runtime.sweep_once() == 0


async def test_with_redis_features_a_velocity_burst_is_declined_with_its_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    rules_file = tmp_path / "risk-rules.yaml"
    rules_file.write_text(RULES_V1)
    prefix = f"paymesh:test:{uuid.uuid4().hex}"
    settings = Settings(
        var_dir=tmp_path,
        risk={
            "database_url": sqlite_url,
            "listen": f"127.0.0.1:{free_port()}",
            "rules_file": str(rules_file),
            "redis_url": "redis://127.0.0.1:6379/0",
            "redis_prefix": prefix,
        },
    )
    await app.migrate(settings)
    runtime = app.create(settings, bus=InProcessBus())
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        # Bounded, so a stuck call fails here with its place instead of hanging the run.
        async with asyncio.timeout(60):
            stub = risk_pb2_grpc.RiskStub(channel)
            outcomes = []
            for n in range(4):
                request = risk_pb2.DecideRequest(
                    payment_id=f"pay_{n}",
                    payer_account_id="acct_a",
                    payee_account_id="acct_b",
                    amount=100,
                    currency="USD",
                )
                outcomes.append(await stub.Decide(request, **caller_options(ALICE, 10)))
            assert [d.outcome for d in outcomes] == [risk_pb2.OUTCOME_APPROVE] * 3 + [
                risk_pb2.OUTCOME_DECLINE
            ]
            assert [r.code for r in outcomes[3].reasons] == ["velocity_payer_burst"]
            assert await client.zcard(f"{prefix}:vel:ten_alice:payer:acct_a") == 3
            # Concurrent decisions for one payer: counting and recording are one atomic
            # step in Redis, so exactly three of eight get through.
            burst = await asyncio.gather(
                *(
                    stub.Decide(
                        risk_pb2.DecideRequest(
                            payment_id=f"pay_c{n}",
                            payer_account_id="acct_c",
                            payee_account_id="acct_b",
                            amount=100,
                            currency="USD",
                        ),
                        **caller_options(ALICE, 10),
                    )
                    for n in range(8)
                )
            )
            assert (
                sorted(d.outcome for d in burst)
                == [risk_pb2.OUTCOME_APPROVE] * 3 + [risk_pb2.OUTCOME_DECLINE] * 5
            )
            assert await client.zcard(f"{prefix}:vel:ten_alice:payer:acct_c") == 3
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + ":*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await channel.close()
        await runtime.stop()


async def test_with_sql_features_concurrent_decisions_for_one_payer_pass_the_velocity_limit_exactly(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The embedded shape: the windows are read, then recorded with the decision;
    # decisions sharing a window are serialised, so exactly three of eight pass.
    rules_file = tmp_path / "risk-rules.yaml"
    rules_file.write_text(RULES_V1)
    settings = Settings(
        var_dir=tmp_path,
        risk={
            "database_url": sqlite_url,
            "listen": f"127.0.0.1:{free_port()}",
            "rules_file": str(rules_file),
        },
    )
    await app.migrate(settings)
    runtime = app.create(settings, bus=InProcessBus())
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    try:
        stub = risk_pb2_grpc.RiskStub(channel)
        async with asyncio.timeout(60):
            burst = await asyncio.gather(
                *(
                    stub.Decide(
                        risk_pb2.DecideRequest(
                            payment_id=f"pay_s{n}",
                            payer_account_id="acct_s",
                            payee_account_id="acct_b",
                            amount=100,
                            currency="USD",
                        ),
                        **caller_options(ALICE, 10),
                    )
                    for n in range(8)
                )
            )
        outcomes = sorted(d.outcome for d in burst)
        assert outcomes == [risk_pb2.OUTCOME_APPROVE] * 3 + [risk_pb2.OUTCOME_DECLINE] * 5
        declined = [d for d in burst if d.outcome == risk_pb2.OUTCOME_DECLINE]
        assert all([r.code for r in d.reasons] == ["velocity_payer_burst"] for d in declined)
    finally:
        await channel.close()
        await runtime.stop()
