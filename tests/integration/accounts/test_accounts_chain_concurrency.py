"""On PostgreSQL, concurrent batches still form one linear, intact hash chain."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.audit import verify
from paymesh.accounts.domain import Account, AccountFlags, Transfer, TransferFlags, TransferResult
from paymesh.accounts.groupcommit import GroupCommitStore
from paymesh.accounts.store import SqlAccountsStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock

pytestmark = pytest.mark.postgres

R = TransferResult
NOW = 1_700_000_000_000_000
NAMES = ["a", "b", "c", "d"]
POST = TransferFlags(post_pending=True)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url, pool_size=20)
    await upgrade(database, MIGRATIONS)
    try:
        yield database
    finally:
        await database.dispose()


def tr(id_: str, dr: str, cr: str, amount: int, flags: TransferFlags | None = None) -> Transfer:
    return Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD",
        flags=flags or TransferFlags(),
    )  # fmt: skip


def random_batches(seed: int, tenant: str, n: int) -> list[list[Transfer]]:
    """Batches of one to three transfers between the tenant's accounts, some of them holds."""
    rng = random.Random(seed)
    batches = []
    for i in range(n):
        batch = []
        for j in range(rng.randint(1, 3)):
            dr, cr = rng.sample(NAMES, 2)
            flags = TransferFlags(pending=rng.random() < 0.3)
            batch.append(tr(f"{tenant}_x{i}_{j}", f"{tenant}_{dr}", f"{tenant}_{cr}", 1, flags))
        batches.append(batch)
    return batches


async def open_accounts(store: SqlAccountsStore | GroupCommitStore, tenant: str) -> None:
    accounts = [Account(id=f"{tenant}_{n}", currency="USD") for n in NAMES]
    accounts.append(
        Account(
            id=f"{tenant}_capped",
            currency="USD",
            flags=AccountFlags(debits_must_not_exceed_credits=True),
        )
    )
    await store.create_accounts(accounts, tenant, NOW)


async def chain_seqs(db: Database) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(sa.text("SELECT seq FROM ledger_batches ORDER BY seq"))
        return list(rows.scalars())


async def test_many_tasks_on_the_store_leave_a_linear_intact_chain(db: Database) -> None:
    store = SqlAccountsStore(db)
    await open_accounts(store, "ta")
    batches = random_batches(1, "ta", 120)
    # Some batches also post or void holds made by earlier ones, and some are refused.
    resolutions = [
        [Transfer(id=f"ta_post{i}", pending_id=f"ta_x{i}_0", flags=POST)] for i in range(0, 120, 7)
    ]
    refused = [[tr(f"ta_over{i}", "ta_capped", "ta_a", 1)] for i in range(10)]
    everything = batches + resolutions + refused
    random.Random(2).shuffle(everything)

    async def send(batch: list[Transfer]) -> list[TransferResult]:
        return (await store.create_transfers(batch, "ta", NOW)).results

    results = await asyncio.gather(*(send(b) for b in everything))
    creating = sum(1 for rs in results if R.OK in rs)
    assert sum(1 for rs in results if rs == [R.EXCEEDS_CREDITS]) == len(refused)
    audit = await verify(db)
    assert audit.problems == []
    assert audit.batches == audit.head_seq == creating
    assert await chain_seqs(db) == list(range(1, creating + 1))


async def test_group_commit_with_two_workers_leaves_a_linear_intact_chain(db: Database) -> None:
    grouped = GroupCommitStore(SqlAccountsStore(db), FixedClock(NOW), workers=2)
    grouped.start()
    try:
        for tenant in ("ta", "tb"):
            await open_accounts(grouped, tenant)
        batches = random_batches(3, "ta", 200) + random_batches(4, "tb", 200)
        random.Random(5).shuffle(batches)

        async def send(batch: list[Transfer]) -> list[TransferResult]:
            tenant = batch[0].id.split("_")[0]
            return (await grouped.create_transfers(batch, tenant, NOW)).results

        results = await asyncio.gather(*(send(b) for b in batches))
        assert all(r is R.OK for rs in results for r in rs)
    finally:
        await grouped.stop()
    audit = await verify(db)
    assert audit.problems == []
    assert audit.transfers == sum(len(b) for b in batches)
    assert audit.batches == audit.head_seq == grouped.batches
    assert grouped.batches < len(batches)  # callers shared batches, and so chain links
    assert await chain_seqs(db) == list(range(1, grouped.batches + 1))
