"""The ledger's store on SQLite and PostgreSQL: migrations, transfers, entries, expiry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.domain import (
    Account,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    TransferResult,
)
from paymesh.accounts.errors import AccountNotFound, InvalidCursor
from paymesh.accounts.ports import Deps
from paymesh.accounts.service import ExpirySweeper
from paymesh.accounts.store import SqlAccountsStore
from paymesh.accounts.tables import metadata, outbox, transfers
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock

R = TransferResult
T = "ten_a"
NOW = 1_700_000_000_000_000
NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlAccountsStore]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlAccountsStore(db)
    finally:
        await db.dispose()


def tr(id_: str, dr: str, cr: str, amount: int, **kw: Any) -> Transfer:
    return Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD", **kw
    )


async def open_accounts(store: SqlAccountsStore, tenant: str = T, *ids: str) -> None:
    batch = [
        Account(id=i, currency="USD", flags=NO_OVERDRAFT if i != "bank" else AccountFlags())
        for i in ids or ("bank", "a", "b")
    ]
    out = await store.create_accounts(batch, tenant, NOW)
    assert set(out.results) == {AccountResult.OK}


async def balances(store: SqlAccountsStore, *ids: str, tenant: str = T) -> list[tuple[int, ...]]:
    found = {a.id: a for a in await store.lookup_accounts(list(ids), tenant)}
    return [
        (
            found[i].debits_pending,
            found[i].debits_posted,
            found[i].credits_pending,
            found[i].credits_posted,
        )
        for i in ids
    ]


async def test_migrations_create_the_tables_the_store_declares(store: SqlAccountsStore) -> None:
    async with store.db.read() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        drift = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    assert {"accounts", "transfers", "outbox", "inbox", "ledger_batches", "ledger_head"} <= names
    assert version == "0003"
    assert drift == []


async def test_accounts_are_created_once_and_looked_up_by_their_tenant(
    store: SqlAccountsStore,
) -> None:
    acct = Account(id="a", currency="EUR", code="customer", metadata={"k": "v"}, flags=NO_OVERDRAFT)
    out = await store.create_accounts([acct], T, NOW)
    assert out.results == [AccountResult.OK]
    again = await store.create_accounts([acct, Account(id="a", currency="USD")], T, NOW + 1)
    assert again.results == [AccountResult.EXISTS, AccountResult.EXISTS_WITH_DIFFERENT_CURRENCY]
    other = await store.create_accounts([acct], "ten_b", NOW)
    assert other.results == [AccountResult.EXISTS_FOR_OTHER_TENANT]
    [found] = await store.lookup_accounts(["a", "missing", "a"], T)
    assert (found.tenant_id, found.code, dict(found.metadata)) == (T, "customer", {"k": "v"})
    assert found.flags == NO_OVERDRAFT
    assert found.created_at_us == NOW
    assert await store.lookup_accounts(["a"], "ten_b") == []


async def test_a_single_phase_transfer_moves_money_and_is_recognised_on_retry(
    store: SqlAccountsStore,
) -> None:
    await open_accounts(store)
    out = await store.create_transfers([tr("t1", "bank", "a", 100)], T, NOW)
    assert out.results == [R.OK]
    assert await balances(store, "bank", "a") == [(0, 100, 0, 0), (0, 0, 0, 100)]
    retry = await store.create_transfers(
        [tr("t1", "bank", "a", 100), tr("t1", "bank", "a", 99)], T, NOW
    )
    assert retry.results == [R.EXISTS, R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert await balances(store, "a") == [(0, 0, 0, 100)]
    over = await store.create_transfers([tr("t2", "a", "b", 101)], T, NOW)
    assert over.results == [R.EXCEEDS_CREDITS]


async def test_a_hold_is_reserved_then_posted_in_part(store: SqlAccountsStore) -> None:
    await open_accounts(store)
    await store.create_transfers([tr("fund", "bank", "a", 100)], T, NOW)
    hold = await store.create_transfers(
        [tr("h", "a", "b", 70, flags=TransferFlags(pending=True))], T, NOW
    )
    assert hold.results == [R.OK]
    assert await balances(store, "a", "b") == [(70, 0, 0, 100), (0, 0, 70, 0)]
    post = Transfer(id="p", pending_id="h", amount=30, flags=TransferFlags(post_pending=True))
    out = await store.create_transfers([post], T, NOW)
    assert out.results == [R.OK]
    assert await balances(store, "a", "b") == [(0, 30, 0, 100), (0, 0, 0, 30)]
    [stored] = await store.lookup_transfers(["p"], T)
    assert (stored.debit_account_id, stored.credit_account_id, stored.amount) == ("a", "b", 30)
    again = await store.create_transfers(
        [post, Transfer(id="v", pending_id="h", flags=TransferFlags(void_pending=True))], T, NOW
    )
    assert again.results == [R.EXISTS, R.PENDING_TRANSFER_ALREADY_POSTED]


async def test_a_voided_hold_releases_everything(store: SqlAccountsStore) -> None:
    await open_accounts(store)
    await store.create_transfers([tr("fund", "bank", "a", 100)], T, NOW)
    await store.create_transfers([tr("h", "a", "b", 70, flags=TransferFlags(pending=True))], T, NOW)
    void = Transfer(id="v", pending_id="h", flags=TransferFlags(void_pending=True))
    assert (await store.create_transfers([void], T, NOW)).results == [R.OK]
    assert await balances(store, "a", "b") == [(0, 0, 0, 100), (0, 0, 0, 0)]


async def test_a_failed_linked_chain_leaves_nothing_behind(store: SqlAccountsStore) -> None:
    await open_accounts(store)
    await store.create_transfers([tr("fund", "bank", "a", 100)], T, NOW)
    linked = TransferFlags(linked=True)
    out = await store.create_transfers(
        [tr("c1", "a", "b", 60, flags=linked), tr("c2", "a", "b", 60)], T, NOW
    )
    assert out.results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert await store.lookup_transfers(["c1", "c2"], T) == []
    assert await balances(store, "a", "b") == [(0, 0, 0, 100), (0, 0, 0, 0)]


async def test_entries_come_newest_first_in_pages(store: SqlAccountsStore) -> None:
    await open_accounts(store)
    batch = [tr(f"t{i}", "bank", "a", i + 1) for i in range(3)]
    batch += [tr(f"t{i}", "a", "b", 1) for i in range(3, 5)]
    assert set((await store.create_transfers(batch, T, NOW)).results) == {R.OK}
    page1, more1 = await store.list_entries("a", T, 2, "")
    assert [(t.id, side) for t, side, _ in page1] == [("t4", "debit"), ("t3", "debit")]
    assert more1
    page2, more2 = await store.list_entries("a", T, 2, "t3")
    assert [(t.id, side) for t, side, _ in page2] == [("t2", "credit"), ("t1", "credit")]
    assert more2
    page3, more3 = await store.list_entries("a", T, 2, "t1")
    assert [t.id for t, _, _ in page3] == ["t0"]
    assert not more3
    with pytest.raises(AccountNotFound):
        await store.list_entries("a", "ten_b", 2, "")
    with pytest.raises(InvalidCursor):
        await store.list_entries("b", T, 2, "t0")


async def test_an_entry_of_a_hold_shows_how_the_hold_ended(store: SqlAccountsStore) -> None:
    await open_accounts(store)
    await store.create_transfers([tr("fund", "bank", "a", 100)], T, NOW)
    pending = TransferFlags(pending=True)
    holds = [tr(h, "a", "b", 10, flags=pending) for h in ("h_post", "h_void", "h_open")]
    holds.append(tr("h_exp", "a", "b", 10, flags=pending, timeout_seconds=1))
    assert set((await store.create_transfers(holds, T, NOW)).results) == {R.OK}
    post = TransferFlags(post_pending=True)
    void = TransferFlags(void_pending=True)
    resolutions = [
        Transfer(id="p", pending_id="h_post", amount=4, flags=post),
        Transfer(id="v", pending_id="h_void", flags=void),
    ]
    assert set((await store.create_transfers(resolutions, T, NOW)).results) == {R.OK}
    assert len(await store.expire_due(NOW + 1_000_000, 10)) == 1
    entries, more = await store.list_entries("a", T, 20, "")
    assert not more
    assert {e.transfer.id: e.status for e in entries} == {
        "h_exp:expired": "voided",
        "p": "posted",
        "v": "voided",
        "fund": "posted",
        "h_post": "posted",
        "h_void": "voided",
        "h_open": "pending",
        "h_exp": "expired",
    }
    # The payee sees the same holds the same way.
    seen_by_b = {e.transfer.id: e.status for e in (await store.list_entries("b", T, 20, ""))[0]}
    assert (seen_by_b["h_post"], seen_by_b["h_open"], seen_by_b["h_exp"]) == (
        "posted",
        "pending",
        "expired",
    )


async def test_another_tenants_accounts_and_transfers_are_invisible(
    store: SqlAccountsStore,
) -> None:
    await open_accounts(store)
    await open_accounts(store, "ten_b", "x", "y")
    out = await store.create_transfers(
        [tr("s1", "x", "a", 1), tr("s2", "bank", "y", 1), tr("ok", "bank", "a", 5)], T, NOW
    )
    assert out.results == [R.DEBIT_ACCOUNT_NOT_FOUND, R.CREDIT_ACCOUNT_NOT_FOUND, R.OK]
    assert await store.lookup_transfers(["ok"], "ten_b") == []
    clash = await store.create_transfers([tr("ok", "x", "y", 5)], "ten_b", NOW)
    assert clash.results == [R.TENANT_MISMATCH]


async def test_a_large_batch_is_applied_in_one_transaction(store: SqlAccountsStore) -> None:
    ids = [f"acct_{i:04d}" for i in range(1500)]
    await open_accounts(store, T, "bank", *ids)
    batch = [tr(f"t_{i}", "bank", a, 2) for i, a in enumerate(ids)]
    out = await store.create_transfers(batch, T, NOW)
    assert set(out.results) == {R.OK}
    assert await balances(store, "bank") == [(0, 3000, 0, 0)]
    assert len(await store.lookup_transfers([t.id for t in batch], T)) == 1500


async def test_the_sweeper_voids_an_expired_hold_and_records_an_event(
    store: SqlAccountsStore,
) -> None:
    await open_accounts(store)
    await store.create_transfers([tr("fund", "bank", "a", 100)], T, NOW)
    pending = TransferFlags(pending=True)
    await store.create_transfers(
        [
            tr("h", "a", "b", 40, flags=pending, timeout_seconds=30),
            tr("h2", "a", "b", 5, flags=pending),
        ],
        T,
        NOW,
    )
    clock = FixedClock(NOW)
    notified: list[bool] = []
    sweeper = ExpirySweeper(
        Deps(store, clock), interval_s=0.01, on_expired=lambda: notified.append(True)
    )
    clock.advance(29)
    assert await sweeper.sweep_once() == 0
    clock.advance(1)
    assert await sweeper.sweep_once() == 1
    assert await sweeper.sweep_once() == 0
    assert notified == [True]
    assert await balances(store, "a", "b") == [(5, 0, 0, 100), (0, 0, 5, 0)]
    [void] = await store.lookup_transfers(["h:expired"], T)
    assert (void.flags.void_pending, void.pending_id, void.code, void.amount) == (
        True,
        "h",
        "expiry",
        40,
    )
    post = Transfer(id="late", pending_id="h", flags=TransferFlags(post_pending=True))
    assert (await store.create_transfers([post], T, clock.now_us())).results == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    async with store.db.read() as conn:
        rows = (await conn.execute(sa.select(outbox))).mappings().all()
        count = (await conn.execute(sa.select(sa.func.count()).select_from(transfers))).scalar()
    assert count == 4
    assert [(r["type"], r["key"], r["topic"], r["tenant_id"]) for r in rows] == [
        ("transfer.expired", "h", "paymesh.accounts.v1", T)
    ]
    assert json.loads(rows[0]["payload"])["data"]["amount"] == 40
