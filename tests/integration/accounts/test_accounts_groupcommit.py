"""Group commit: concurrent callers share transactions and keep their own results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.domain import Account, AccountFlags, Transfer, TransferFlags, TransferResult
from paymesh.accounts.groupcommit import GroupCommitStore
from paymesh.accounts.store import SqlAccountsStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock

R = TransferResult
NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[GroupCommitStore]:
    db = Database(db_url, pool_size=20)
    await upgrade(db, MIGRATIONS)
    grouped = GroupCommitStore(SqlAccountsStore(db), FixedClock(), workers=1 if db.is_sqlite else 2)
    grouped.start()
    try:
        yield grouped
    finally:
        await grouped.stop()
        await db.dispose()


def tr(id_: str, dr: str, cr: str, amount: int, *, linked: bool = False) -> Transfer:
    return Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD",
        flags=TransferFlags(linked=linked),
    )  # fmt: skip


async def _setup(store: GroupCommitStore, tenant: str, funds: int) -> None:
    await store.create_accounts(
        [
            Account(id=f"{tenant}_bank", currency="USD"),
            Account(id=f"{tenant}_wallet", currency="USD", flags=NO_OVERDRAFT),
            Account(id=f"{tenant}_shop", currency="USD", flags=NO_OVERDRAFT),
        ],
        tenant,
        0,
    )
    await store.create_transfers(
        [tr(f"{tenant}_fund", f"{tenant}_bank", f"{tenant}_wallet", funds)], tenant, 0
    )


async def test_concurrent_callers_are_merged_into_fewer_transactions(
    store: GroupCommitStore,
) -> None:
    await _setup(store, "ta", 1_000)
    before = store.batches

    async def pay(i: int) -> TransferResult:
        out = await store.create_transfers([tr(f"p{i}", "ta_wallet", "ta_shop", 1)], "ta", 0)
        return out.results[0]

    results = await asyncio.gather(*(pay(i) for i in range(200)))
    assert results == [R.OK] * 200
    assert store.batches - before < 200  # shared commits
    [wallet] = await store.lookup_accounts(["ta_wallet"], "ta")
    assert wallet.credits_posted - wallet.debits_posted == 800


async def test_a_failed_chain_of_one_caller_does_not_touch_another_callers_transfers(
    store: GroupCommitStore,
) -> None:
    await _setup(store, "ta", 10)
    await _setup(store, "tb", 10)
    bad_chain = [
        tr("c1", "ta_wallet", "ta_shop", 5, linked=True),
        tr("c2", "ta_wallet", "ta_shop", 50),  # exceeds credits: the chain fails
    ]
    good = [tr("g1", "tb_wallet", "tb_shop", 7)]
    a, b = await asyncio.gather(
        store.create_transfers(bad_chain, "ta", 0), store.create_transfers(good, "tb", 0)
    )
    assert a.results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert b.results == [R.OK]
    assert b.transfers[0] is not None
    assert b.transfers[0].tenant_id == "tb"
    [wa] = await store.lookup_accounts(["ta_wallet"], "ta")
    [wb] = await store.lookup_accounts(["tb_wallet"], "tb")
    assert wa.debits_posted == 0
    assert wb.debits_posted == 7


async def test_a_batch_ending_in_an_open_chain_is_not_merged_into_anothers(
    store: GroupCommitStore,
) -> None:
    await _setup(store, "ta", 10)
    open_chain = [tr("o1", "ta_wallet", "ta_shop", 1, linked=True)]
    after = [tr("o2", "ta_wallet", "ta_shop", 1)]
    a, b = await asyncio.gather(
        store.create_transfers(open_chain, "ta", 0), store.create_transfers(after, "ta", 0)
    )
    assert a.results == [R.LINKED_EVENT_CHAIN_OPEN]
    assert b.results == [R.OK]


async def test_a_tenant_cannot_reach_another_tenants_account_inside_a_merged_batch(
    store: GroupCommitStore,
) -> None:
    await _setup(store, "ta", 10)
    await _setup(store, "tb", 10)
    theft = [tr("t1", "tb_wallet", "ta_shop", 5)]
    honest = [tr("h1", "tb_wallet", "tb_shop", 5)]
    a, b = await asyncio.gather(
        store.create_transfers(theft, "ta", 0), store.create_transfers(honest, "tb", 0)
    )
    assert a.results == [R.DEBIT_ACCOUNT_NOT_FOUND]
    assert b.results == [R.OK]


@pytest.mark.postgres
async def test_a_hundred_grouped_debits_never_overdraw_an_account_holding_ten(
    pg_url: str,
) -> None:
    db = Database(pg_url, pool_size=20)
    await upgrade(db, MIGRATIONS)
    store = GroupCommitStore(SqlAccountsStore(db), FixedClock(), workers=2)
    store.start()
    try:
        await _setup(store, "ta", 10)

        async def debit(i: int) -> TransferResult:
            out = await store.create_transfers([tr(f"d{i}", "ta_wallet", "ta_shop", 1)], "ta", 0)
            return out.results[0]

        results = await asyncio.gather(*(debit(i) for i in range(100)))
        assert results.count(R.OK) == 10
        assert results.count(R.EXCEEDS_CREDITS) == 90
        [wallet] = await store.lookup_accounts(["ta_wallet"], "ta")
        assert wallet.credits_posted - wallet.debits_posted == 0
    finally:
        await store.stop()
        await db.dispose()


class _Gated(SqlAccountsStore):
    """A store whose first create_transfers waits at a gate (to fill the queue behind it)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def create_transfers(self, batch, tenant_id, now_us):  # type: ignore[no-untyped-def]
        if not self.gate.is_set():
            self.entered.set()
            await self.gate.wait()
        return await super().create_transfers(batch, tenant_id, now_us)


async def test_a_caller_that_gives_up_while_queued_commits_nothing(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    gated = _Gated(db)
    store = GroupCommitStore(gated, FixedClock(), workers=1)
    store.start()
    try:
        gated.gate.set()
        await _setup(store, "ta", 10)
        gated.gate.clear()
        first = asyncio.create_task(
            store.create_transfers([tr("q1", "ta_wallet", "ta_shop", 1)], "ta", 0)
        )
        await gated.entered.wait()  # the worker holds q1's batch at the gate
        second = asyncio.create_task(
            store.create_transfers([tr("q2", "ta_wallet", "ta_shop", 1)], "ta", 0)
        )
        await asyncio.sleep(0.05)  # q2 is queued behind it
        second.cancel()  # its caller's deadline passed
        gated.gate.set()
        assert (await first).results == [R.OK]
        third = await store.create_transfers([tr("q3", "ta_wallet", "ta_shop", 1)], "ta", 0)
        assert third.results == [R.OK]
        found = await store.lookup_transfers(["q1", "q2", "q3"], "ta")
        assert [t.id for t in found] == ["q1", "q3"]
    finally:
        await store.stop()
        await db.dispose()
