"""Concurrent batches on PostgreSQL: no overdraft under contention, no deadlocks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.domain import Account, AccountFlags, Transfer, TransferResult
from paymesh.accounts.store import SqlAccountsStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade

pytestmark = pytest.mark.postgres

R = TransferResult
T = "ten_a"
NOW = 1_700_000_000_000_000


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[SqlAccountsStore]:
    db = Database(pg_url, pool_size=20)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlAccountsStore(db)
    finally:
        await db.dispose()


def tr(id_: str, dr: str, cr: str, amount: int) -> Transfer:
    return Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD"
    )


async def test_a_hundred_concurrent_debits_never_overdraw_an_account_holding_ten(
    store: SqlAccountsStore,
) -> None:
    no_overdraft = AccountFlags(debits_must_not_exceed_credits=True)
    await store.create_accounts(
        [
            Account(id="bank", currency="USD"),
            Account(id="wallet", currency="USD", flags=no_overdraft),
            Account(id="shop", currency="USD"),
        ],
        T,
        NOW,
    )
    await store.create_transfers([tr("fund", "bank", "wallet", 10)], T, NOW)

    async def debit(i: int) -> TransferResult:
        out = await store.create_transfers([tr(f"d{i}", "wallet", "shop", 1)], T, NOW)
        return out.results[0]

    results = await asyncio.gather(*(debit(i) for i in range(100)))
    assert results.count(R.OK) == 10
    assert results.count(R.EXCEEDS_CREDITS) == 90
    [wallet] = await store.lookup_accounts(["wallet"], T)
    assert wallet.credits_posted - wallet.debits_posted == 0
    assert wallet.debits_pending == 0


async def test_transfers_in_both_directions_finish_without_deadlocks_and_add_up(
    store: SqlAccountsStore,
) -> None:
    names = ["a", "b", "c"]
    await store.create_accounts([Account(id=n, currency="USD") for n in names], T, NOW)
    rng = random.Random(7)
    batches: list[list[Transfer]] = []
    for i in range(150):
        # Each batch touches two or three accounts, listed in a random order.
        pairs = [tuple(rng.sample(names, 2)) for _ in range(rng.randint(1, 3))]
        batches.append(
            [tr(f"x{i}_{j}", dr, cr, rng.randint(1, 9)) for j, (dr, cr) in enumerate(pairs)]
        )

    async def send(batch: list[Transfer]) -> list[TransferResult]:
        return (await store.create_transfers(batch, T, NOW)).results

    results = await asyncio.gather(*(send(b) for b in batches))
    assert all(r == R.OK for rs in results for r in rs)
    want = {n: [0, 0] for n in names}
    for batch in batches:
        for t in batch:
            want[t.debit_account_id][0] += t.amount
            want[t.credit_account_id][1] += t.amount
    got = {a.id: a for a in await store.lookup_accounts(names, T)}
    assert {n: [got[n].debits_posted, got[n].credits_posted] for n in names} == want
    assert sum(a.debits_posted for a in got.values()) == sum(a.credits_posted for a in got.values())
