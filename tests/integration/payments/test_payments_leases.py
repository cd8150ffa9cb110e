"""Saga leases between replicas: two runners never run one step at once, and a step left
by a process that died is taken by another at once (PostgreSQL: its liveness lock is gone),
never while its owner lives."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from paymesh.payments import domain
from paymesh.payments.app import MIGRATIONS
from paymesh.payments.domain import CaptureMethod, CreatePayment, Payment, Step
from paymesh.payments.saga import Deps, Resumer, RetryPolicy, leased, run_payment
from paymesh.payments.store import LIVENESS_LOCK, SqlPaymentsStore
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.locks import SessionLock
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

FAST = RetryPolicy(inline_attempts=3, inline_wait_s=0, inline_wait_max_s=0)

NOW = 1_700_000_000_000_000
ALICE = Caller(tenant_id="ten_a", client_id="cli_a")


def _payment(clock: FixedClock) -> Payment:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.MANUAL,
    )
    return domain.new_payment(cmd, "ten_a", clock.now_us())


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield db
    finally:
        await db.dispose()


def _deps(store: SqlPaymentsStore, clock: FixedClock, ledger: FakeLedger | None = None) -> Deps:
    if ledger is None:
        ledger = FakeLedger()
        ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
        ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return Deps(store=store, ledger=ledger, risk=FakeRisk(), clock=clock, retry=FAST)


async def test_of_two_replicas_claiming_a_due_step_at_once_one_gets_it(
    database: Database,
) -> None:
    clock = FixedClock(NOW)
    first, second = SqlPaymentsStore(database), SqlPaymentsStore(database)
    payment = _payment(clock)  # its risk step is due now: no lease
    assert await first.add("payment", payment) is None
    lease = dict(now_us=clock.now_us(), until_us=clock.now_us() + 30_000_000, take=False)

    assert await first.claim("payment", payment.id, Step.RISK, **lease)
    assert not await second.claim("payment", payment.id, Step.RISK, **lease)
    # The holder may claim again (its own next step, a retry of its request).
    assert await first.claim("payment", payment.id, Step.RISK, **lease)
    # Once the lease ran out, anyone may.
    later = dict(lease, now_us=clock.now_us() + 31_000_000, until_us=clock.now_us() + 61_000_000)
    assert await second.claim("payment", payment.id, Step.RISK, **later)
    assert not await first.claim("payment", payment.id, Step.RISK, **later)


async def test_a_runner_leaves_a_step_another_runner_holds_the_lease_of(
    database: Database,
) -> None:
    clock = FixedClock(NOW)
    holder, other = SqlPaymentsStore(database), SqlPaymentsStore(database)
    deps = _deps(holder, clock)
    payment = leased(_payment(clock), deps)  # recorded by `holder`, leased for 30 s
    assert await holder.add("payment", payment) is None

    left = await run_payment(payment.id, caller=ALICE, deps=dataclasses.replace(deps, store=other))
    assert left is not None
    assert (left.status, left.step) == (payment.status, Step.RISK)

    ran = await run_payment(payment.id, caller=ALICE, deps=deps)
    assert ran is not None
    assert ran.step is None
    assert ran.status.value == "requires_capture"


@pytest.mark.postgres
async def test_a_step_of_a_live_replica_is_left_alone_and_a_dead_ones_is_resumed_at_once(
    pg_url: str,
) -> None:
    database = Database(pg_url)
    await upgrade(database, MIGRATIONS)
    clock = FixedClock(NOW)
    try:
        dying, survivor = SqlPaymentsStore(database), SqlPaymentsStore(database)
        dying_alive = SessionLock(database, LIVENESS_LOCK, dying.owner)
        survivor_alive = SessionLock(database, LIVENESS_LOCK, survivor.owner)
        assert await dying_alive.held()
        assert await survivor_alive.held()
        deps = _deps(dying, clock)
        payment = leased(_payment(clock), deps)  # leased to `dying` for 30 s
        assert await dying.add("payment", payment) is None

        resumer = Resumer(
            dataclasses.replace(deps, store=survivor),
            interval_s=0.1,
            liveness=survivor_alive,
            grace_s=0,
        )
        assert await resumer.run_once() == 0, "a live replica's leased step was taken"

        await dying_alive.release()  # its session ends, as when the process is killed
        assert await resumer.run_once() == 1
        resumed = await survivor.get_payment(payment.id)
        assert resumed is not None
        assert resumed.step is None
        assert resumed.status.value == "requires_capture"
        await survivor_alive.release()
    finally:
        await database.dispose()
