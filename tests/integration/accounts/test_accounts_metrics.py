"""The ledger's metrics: transfers by result, batch sizes, the chain's head, and the periodic
incremental verification (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.audit import PeriodicVerify, verify
from paymesh.accounts.domain import Account, AccountFlags, Transfer, TransferResult
from paymesh.accounts.groupcommit import GroupCommitStore
from paymesh.accounts.store import SqlAccountsStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock

T = "ten_a"
NOW = 1_700_000_000_000_000
S = {"service": "accounts"}


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlAccountsStore]:
    db = Database(db_url, pool_size=20)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlAccountsStore(db)
    finally:
        await db.dispose()


async def execute(db: Database, *statements: str) -> None:
    async with db.transaction() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


async def drop_append_only_triggers(db: Database) -> None:
    if db.is_sqlite:
        await execute(db, "DROP TRIGGER transfers_no_update", "DROP TRIGGER transfers_no_delete")
    else:
        await execute(db, "DROP TRIGGER transfers_append_only ON transfers")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {**S, **labels}) or 0.0


def _tr(id_: str, dr: str, cr: str, amount: int) -> Transfer:
    return Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD"
    )


async def _accounts(store: SqlAccountsStore) -> None:
    no_overdraft = AccountFlags(debits_must_not_exceed_credits=True)
    await store.create_accounts(
        [
            Account(id="bank", currency="USD"),
            Account(id="a", currency="USD", flags=no_overdraft),
            Account(id="b", currency="USD", flags=no_overdraft),
        ],
        T,
        NOW,
    )


async def test_each_transfer_is_counted_by_its_result_and_the_head_follows_the_chain(
    store: SqlAccountsStore,
) -> None:
    await _accounts(store)
    ok, exists = (
        _value("paymesh_ledger_transfers_total", result="ok"),
        _value("paymesh_ledger_transfers_total", result="exists"),
    )
    short = _value("paymesh_ledger_transfers_total", result="exceeds_credits")
    batches = _value("paymesh_ledger_batch_transfers_count")
    sizes = _value("paymesh_ledger_batch_transfers_sum")
    out = await store.create_transfers(
        [_tr("f1", "bank", "a", 100), _tr("f2", "bank", "b", 100), _tr("x", "a", "b", 10_000)],
        T,
        NOW,
    )
    assert out.results == [TransferResult.OK, TransferResult.OK, TransferResult.EXCEEDS_CREDITS]
    await store.create_transfers([_tr("f1", "bank", "a", 100)], T, NOW)  # a retry: exists
    assert _value("paymesh_ledger_transfers_total", result="ok") == ok + 2
    assert _value("paymesh_ledger_transfers_total", result="exists") == exists + 1
    assert _value("paymesh_ledger_transfers_total", result="exceeds_credits") == short + 1
    assert _value("paymesh_ledger_batch_transfers_count") == batches + 2
    assert _value("paymesh_ledger_batch_transfers_sum") == sizes + 4
    # The retry appended nothing: the head is the first batch's.
    assert (await verify(store.db)).head_seq == 1
    assert _value("paymesh_ledger_chain_head_seq") >= 1
    await store.create_transfers([_tr("f3", "bank", "a", 1)], T, NOW)
    assert (await verify(store.db)).head_seq == 2
    assert _value("paymesh_ledger_chain_head_seq") >= 2


async def test_a_merged_group_commit_is_observed_as_one_batch_of_all_its_transfers(
    store: SqlAccountsStore,
) -> None:
    await _accounts(store)
    await store.create_transfers([_tr("fund", "bank", "a", 1_000)], T, NOW)
    grouped = GroupCommitStore(store, FixedClock(), workers=1)
    grouped.start()
    try:
        batches = _value("paymesh_ledger_batch_transfers_count")
        sizes = _value("paymesh_ledger_batch_transfers_sum")
        results = await asyncio.gather(
            *(grouped.create_transfers([_tr(f"p{i}", "a", "b", 1)], T, NOW) for i in range(50))
        )
        assert all(r.results == [TransferResult.OK] for r in results)
        merged = grouped.batches
        assert _value("paymesh_ledger_batch_transfers_sum") == sizes + 50
        assert _value("paymesh_ledger_batch_transfers_count") == batches + merged
        assert merged < 50
    finally:
        await grouped.stop()


async def test_the_periodic_verify_reports_a_tampered_batch_and_checks_only_what_is_new(
    store: SqlAccountsStore,
) -> None:
    await _accounts(store)
    heads: list[int] = []
    checker = PeriodicVerify(store.db, interval_s=60, service="accounts", on_head=heads.append)
    await store.create_transfers([_tr("f1", "bank", "a", 100)], T, NOW)
    audit = await checker.run_once()
    assert audit.problems == []
    assert _value("paymesh_ledger_verify_problems") == 0
    await store.create_transfers([_tr("f2", "bank", "b", 50)], T, NOW)
    audit = await checker.run_once()
    assert (audit.batches, audit.head_seq) == (1, 2)  # only the batch appended since
    assert heads == [1, 2]
    await drop_append_only_triggers(store.db)
    await execute(store.db, "UPDATE transfers SET amount = 51 WHERE id = 'f2'")
    await store.create_transfers([_tr("f3", "bank", "b", 1)], T, NOW)
    # f2's batch was verified already: the next incremental pass checks batch 3 only...
    assert (await checker.run_once()).problems == []
    # ...while the debits = credits check catches the imbalance the change made.
    await execute(
        store.db, "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'b'"
    )
    audit = await checker.run_once()
    assert [p.kind for p in audit.problems] == ["currency_imbalance"]
    assert _value("paymesh_ledger_verify_problems") == 1
    # The whole audit still finds the changed batch.
    assert "batch_hash" in [p.kind for p in (await verify(store.db)).problems]


async def test_a_fresh_verifier_checks_the_whole_chain_and_finds_a_changed_batch(
    store: SqlAccountsStore,
) -> None:
    await _accounts(store)
    await store.create_transfers([_tr("f1", "bank", "a", 100)], T, NOW)
    await store.create_transfers([_tr("f2", "bank", "b", 50)], T, NOW)
    await drop_append_only_triggers(store.db)
    await execute(store.db, "UPDATE transfers SET reference = 'forged' WHERE id = 'f1'")
    checker = PeriodicVerify(store.db, interval_s=60, service="accounts")
    audit = await checker.run_once()
    assert [(p.kind, p.subject) for p in audit.problems] == [("batch_hash", "batch 1")]
    assert _value("paymesh_ledger_verify_problems") == 1
    # Not cleared by the next pass: it starts again from the last clean mark.
    assert len((await checker.run_once()).problems) == 1
