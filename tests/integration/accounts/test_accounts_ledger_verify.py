"""The hash chain, append-only triggers and `verify` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from paymesh.accounts import domain
from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.audit import Audit, verify
from paymesh.accounts.domain import (
    Account,
    AccountFlags,
    LedgerState,
    Transfer,
    TransferFlags,
    TransferResult,
)
from paymesh.accounts.errors import AccountNotFound, InvalidCursor
from paymesh.accounts.store import SqlAccountsStore
from paymesh.accounts.tables import account_values, transfer_values
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade

R = TransferResult
T = "ten_a"
NOW = 1_700_000_000_000_000
NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)
PENDING = TransferFlags(pending=True)
POST = TransferFlags(post_pending=True)
VOID = TransferFlags(void_pending=True)


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


async def every_kind_of_operation(store: SqlAccountsStore) -> None:
    """Single-phase, pending/post, pending/void, a failed linked chain and an expiry."""
    accounts = [Account(id="bank", currency="USD"), Account(id="eur", currency="EUR")]
    accounts += [Account(id=i, currency="USD", flags=NO_OVERDRAFT) for i in ("a", "b")]
    await store.create_accounts(accounts, T, NOW)
    steps: list[tuple[list[Transfer], list[TransferResult]]] = [
        ([tr("fund", "bank", "a", 1000)], [R.OK]),
        ([tr("h1", "a", "b", 300, flags=PENDING), tr("h2", "a", "b", 50, flags=PENDING)],
         [R.OK, R.OK]),
        ([Transfer(id="p1", pending_id="h1", amount=200, flags=POST)], [R.OK]),
        ([Transfer(id="v2", pending_id="h2", flags=VOID)], [R.OK]),
        (
            [tr("c1", "a", "b", 10, flags=TransferFlags(linked=True)), tr("c2", "a", "b", 10_000)],
            [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS],
        ),
        ([tr("h3", "a", "b", 40, flags=PENDING, timeout_seconds=1)], [R.OK]),
        ([tr("fund", "bank", "a", 1000)], [R.EXISTS]),  # a retry creates no batch
    ]  # fmt: skip
    for batch, want in steps:
        assert (await store.create_transfers(batch, T, NOW)).results == want
    assert [v.id for v in await store.expire_due(NOW + 1_000_000, 10)] == ["h3:expired"]


async def execute(db: Database, *statements: str) -> None:
    async with db.transaction() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


async def drop_append_only_triggers(db: Database) -> None:
    if db.is_sqlite:
        await execute(db, "DROP TRIGGER transfers_no_update", "DROP TRIGGER transfers_no_delete")
    else:
        await execute(db, "DROP TRIGGER transfers_append_only ON transfers")


def kinds(audit: Audit) -> list[tuple[str, str]]:
    return [(p.kind, p.subject) for p in audit.problems]


async def batch_of(db: Database, transfer_id: str) -> int:
    async with db.read() as conn:
        seq = await conn.execute(
            sa.text("SELECT batch_seq FROM transfers WHERE id = :id"), {"id": transfer_id}
        )
        return int(seq.scalar_one())


async def test_a_ledger_after_every_kind_of_operation_verifies_clean(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    audit = await verify(store.db, page_size=2)  # pages end inside and between batches
    assert audit.problems == []
    # fund, the two holds, post, void, the timed hold, the expiry void: 6 batches, 7 transfers.
    assert (audit.accounts, audit.transfers, audit.batches, audit.head_seq) == (4, 7, 6, 6)
    assert await batch_of(store.db, "h2") == await batch_of(store.db, "h1") == 2
    assert await batch_of(store.db, "h3:expired") == 6


async def test_a_batch_larger_than_a_page_of_inserts_and_of_reads_verifies(
    store: SqlAccountsStore,
) -> None:
    ids = [f"acct_{i:04d}" for i in range(1200)]
    await store.create_accounts([Account(id=i, currency="USD") for i in ["bank", *ids]], T, NOW)
    batch = [tr(f"t_{i}", "bank", a, i + 1) for i, a in enumerate(ids)]
    assert set((await store.create_transfers(batch, T, NOW)).results) == {R.OK}
    audit = await verify(store.db, page_size=250)
    assert (audit.problems, audit.transfers, audit.batches) == ([], 1200, 1)


async def test_a_balance_changed_by_hand_is_reported_with_the_currency_imbalance(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    await execute(
        store.db, "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'b'"
    )
    audit = await verify(store.db)
    assert kinds(audit) == [
        ("currency_imbalance", "currency USD"),
        ("account_balance", "account b (USD)"),
    ]
    assert "credits_posted is 201, its transfers sum to 200" in str(audit.problems[1])


async def test_a_reference_changed_behind_the_triggers_breaks_the_chain_at_its_batch(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    await drop_append_only_triggers(store.db)
    await execute(store.db, "UPDATE transfers SET reference = 'forged' WHERE id = 'p1'")
    audit = await verify(store.db)
    seq = await batch_of(store.db, "p1")
    assert kinds(audit) == [("batch_hash", f"batch {seq}")]


async def test_a_deleted_transfer_is_reported_at_its_batch_and_its_accounts(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    seq = await batch_of(store.db, "v2")
    await drop_append_only_triggers(store.db)
    await execute(store.db, "DELETE FROM transfers WHERE id = 'v2'")
    audit = await verify(store.db)
    # Without its void, h2 counts as pending again: both sides' pending balances disagree.
    assert ("account_balance", "account a (USD)") in kinds(audit)
    assert ("account_balance", "account b (USD)") in kinds(audit)
    assert ("batch_count", f"batch {seq}") in kinds(audit)
    assert ("batch_hash", f"batch {seq}") in kinds(audit)


async def test_the_database_refuses_to_update_or_delete_transfers_and_batches(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    for statement in (
        "UPDATE transfers SET amount = 1 WHERE id = 'fund'",
        "DELETE FROM transfers WHERE id = 'fund'",
        "UPDATE ledger_batches SET hash = prev_hash",
        "DELETE FROM ledger_batches",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await execute(store.db, statement)
    assert (await verify(store.db)).ok


async def test_the_chain_links_each_batch_to_the_one_before(store: SqlAccountsStore) -> None:
    await every_kind_of_operation(store)
    async with store.db.read() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM ledger_batches ORDER BY seq"))).all()
        head = (await conn.execute(sa.text("SELECT seq, hash FROM ledger_head"))).one()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == domain.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert [r.transfer_count for r in rows] == [1, 2, 1, 1, 1, 1]
    assert (head.seq, head.hash) == (6, rows[-1].hash)


async def test_balances_as_of_an_instant_count_only_what_was_created_by_then(
    store: SqlAccountsStore,
) -> None:
    await store.create_accounts(
        [Account(id="bank", currency="USD"), Account(id="a", currency="USD")], T, NOW
    )
    post = TransferFlags(post_pending=True)
    timeline = [
        (NOW + 10, tr("fund", "bank", "a", 100)),
        (NOW + 20, tr("hold", "a", "bank", 30, flags=PENDING)),
        (NOW + 30, Transfer(id="post", pending_id="hold", amount=20, flags=post)),
        (NOW + 40, tr("hold2", "a", "bank", 10, flags=PENDING)),
        (NOW + 50, Transfer(id="void", pending_id="hold2", flags=TransferFlags(void_pending=True))),
    ]  # fmt: skip
    for at, t in timeline:
        assert (await store.create_transfers([t], T, at)).results == [R.OK]

    async def a_at(instant: int) -> tuple[int, int, int, int]:
        a = await store.balances_as_of("a", T, instant)
        return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)

    assert await a_at(NOW + 9) == (0, 0, 0, 0)
    assert await a_at(NOW + 10) == (0, 0, 0, 100)
    assert await a_at(NOW + 29) == (30, 0, 0, 100)
    assert await a_at(NOW + 30) == (0, 20, 0, 100)
    assert await a_at(NOW + 45) == (10, 20, 0, 100)
    assert await a_at(NOW + 50) == (0, 20, 0, 100)
    [now] = await store.lookup_accounts(["a"], T)
    assert await a_at(NOW + 10**9) == (
        now.debits_pending, now.debits_posted, now.credits_pending, now.credits_posted
    )  # fmt: skip
    bank = await store.balances_as_of("bank", T, NOW + 29)
    assert (bank.debits_posted, bank.credits_pending) == (100, 30)
    with pytest.raises(AccountNotFound):
        await store.balances_as_of("a", "ten_b", NOW + 50)
    with pytest.raises(AccountNotFound):
        await store.balances_as_of("nope", T, NOW + 50)


async def test_accounts_are_listed_by_id_in_pages_for_their_tenant_only(
    store: SqlAccountsStore,
) -> None:
    ids = [f"acct_{i:02d}" for i in range(25)]
    await store.create_accounts([Account(id=i, currency="USD") for i in reversed(ids)], T, NOW)
    await store.create_accounts([Account(id="acct_05b", currency="USD")], "ten_b", NOW)
    page1, more1 = await store.list_accounts(T, 10, "")
    page2, more2 = await store.list_accounts(T, 10, page1[-1].id)
    page3, more3 = await store.list_accounts(T, 10, page2[-1].id)
    assert [a.id for a in page1 + page2 + page3] == ids
    assert (more1, more2, more3) == (True, True, False)
    assert {a.tenant_id for a in page1 + page2 + page3} == {T}
    other, more = await store.list_accounts("ten_b", 10, "")
    assert ([a.id for a in other], more) == (["acct_05b"], False)
    with pytest.raises(InvalidCursor):
        await store.list_accounts("ten_b", 10, "acct_01")


async def insert_rows(db: Database, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert through a bare table clause, so only the columns the rows name are written."""
    async with db.transaction() as conn:
        await conn.execute(sa.table(table, *(sa.column(c) for c in rows[0])).insert(), rows)


async def test_a_database_from_revision_0001_with_data_is_chained_and_verifies(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db, MIGRATIONS, "0001")
        # Data as the 0001 code wrote it: the domain's outcome, inserted without batches.
        opened = domain.create_accounts(
            {}, [Account(id=i, currency="USD") for i in ("bank", "a", "b")], T, NOW
        )
        state = LedgerState(accounts={a.id: a for a in opened.created})
        batch = [tr(f"t{i}", "bank", "ab"[i % 2], i + 1) for i in range(5)]
        batch.append(tr("h", "a", "b", 1, flags=PENDING, timeout_seconds=60))
        outcome = domain.create_transfers(state, batch, T, NOW)
        balances = {a.id: a for a in opened.created} | outcome.accounts
        # Without the columns later migrations added (0003: the bank details).
        legacy_accounts = [
            {k: v for k, v in account_values(a).items() if not k.startswith("bank_")}
            for a in balances.values()
        ]
        await insert_rows(db, "accounts", legacy_accounts)
        legacy = [transfer_values(t) for t in outcome.created]
        await insert_rows(
            db, "transfers", [{k: v for k, v in row.items() if k != "batch_seq"} for row in legacy]
        )
        await upgrade(db, MIGRATIONS)
        audit = await verify(db)
        assert audit.problems == []
        assert (audit.transfers, audit.batches, audit.head_seq) == (6, 1, 1)
        store = SqlAccountsStore(db)
        more = await store.create_transfers([tr("after", "bank", "a", 7)], T, NOW + 1)
        assert more.results == [R.OK]
        audit = await verify(db)
        assert (audit.problems, audit.batches, audit.head_seq) == ([], 2, 2)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await execute(db, "DELETE FROM transfers WHERE id = 't0'")
    finally:
        await db.dispose()


async def test_a_database_without_transfers_starts_the_chain_at_genesis(
    store: SqlAccountsStore,
) -> None:
    audit = await verify(store.db)
    assert (audit.problems, audit.batches, audit.head_seq, audit.head_hash) == (
        [], 0, 0, domain.GENESIS_HASH
    )  # fmt: skip


def paymesh_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "paymesh"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


async def test_the_cli_verify_exits_zero_when_intact_and_names_a_tampered_account(
    store: SqlAccountsStore,
) -> None:
    await every_kind_of_operation(store)
    good = await asyncio.to_thread(paymesh_cli, "ledger", "verify", "--database-url", store.db.url)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ledger ok: checked 4 accounts, 7 transfers, 6 batches" in good.stdout
    await execute(store.db, "UPDATE accounts SET debits_posted = debits_posted - 5 WHERE id = 'a'")
    bad = await asyncio.to_thread(paymesh_cli, "ledger", "verify", "--database-url", store.db.url)
    assert bad.returncode == 1
    assert "account_balance: account a (USD): debits_posted is 195" in bad.stdout
    assert "currency_imbalance: currency USD" in bad.stdout
