"""An account's bank details in the accounts service: stored (SQLite and PostgreSQL), set,
replaced and removed for the caller's tenant only, carried over gRPC, validated there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from paymesh.accounts import app
from paymesh.accounts.app import MIGRATIONS
from paymesh.accounts.domain import Account, AccountFlags, AccountResult, BankAccount, Transfer
from paymesh.accounts.errors import AccountNotFound
from paymesh.accounts.store import SqlAccountsStore
from paymesh.contracts.accounts.v1 import accounts_pb2 as pb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc as pb_grpc
from paymesh.platform.bus import InProcessBus
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.migrations import upgrade
from paymesh.platform.rpc import error_code, open_channel
from paymesh.settings import Settings

T, OTHER = "ten_a", "ten_b"
NOW = 1_700_000_000_000_000
BANK = BankAccount(iban="DE89370400440532013000", bic="COBADEFFXXX", name="Example GmbH")
OTHER_BANK = BankAccount(iban="GB82WEST12345698765432", bic="NWBKGB2L", name="Example Ltd")
NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlAccountsStore]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlAccountsStore(db)
    finally:
        await db.dispose()


async def _one(store: SqlAccountsStore, account_id: str, tenant: str = T) -> Account:
    [found] = await store.lookup_accounts([account_id], tenant)
    return found


async def test_bank_details_are_stored_at_opening_and_read_back_everywhere(
    store: SqlAccountsStore,
) -> None:
    merchant = Account(id="m", currency="EUR", code="merchant", bank_account=BANK)
    out = await store.create_accounts([merchant, Account(id="c", currency="EUR")], T, NOW)
    assert out.results == [AccountResult.OK, AccountResult.OK]
    assert (await _one(store, "m")).bank_account == BANK
    assert (await _one(store, "c")).bank_account is None
    page, _ = await store.list_accounts(T, 10, "")
    assert {a.id: a.bank_account for a in page} == {"c": None, "m": BANK}
    assert (await store.balances_as_of("m", T, NOW)).bank_account == BANK
    # Opening it again answers the stored account; its bank details are not compared
    # (they may have changed since): the same id without them is the same account.
    again = await store.create_accounts([Account(id="m", currency="EUR", code="merchant")], T, NOW)
    assert again.results == [AccountResult.EXISTS]
    [stored] = again.accounts
    assert stored is not None
    assert stored.bank_account == BANK


async def test_bank_details_are_set_replaced_and_removed_for_the_tenant_only(
    store: SqlAccountsStore,
) -> None:
    await store.create_accounts([Account(id="m", currency="EUR")], T, NOW)
    assert (await store.set_bank_account("m", T, BANK)).bank_account == BANK
    assert (await store.set_bank_account("m", T, BANK)).bank_account == BANK  # idempotent
    assert (await store.set_bank_account("m", T, OTHER_BANK)).bank_account == OTHER_BANK
    assert (await _one(store, "m")).bank_account == OTHER_BANK
    with pytest.raises(AccountNotFound):
        await store.set_bank_account("m", OTHER, BANK)
    with pytest.raises(AccountNotFound):
        await store.set_bank_account("m", OTHER, None)
    with pytest.raises(AccountNotFound):
        await store.set_bank_account("missing", T, BANK)
    assert (await _one(store, "m")).bank_account == OTHER_BANK  # another tenant changed nothing
    removed = await store.set_bank_account("m", T, None)
    assert removed.bank_account is None
    assert (await store.set_bank_account("m", T, None)).bank_account is None  # idempotent
    assert (await _one(store, "m")).bank_account is None


async def test_moving_money_keeps_the_bank_details(store: SqlAccountsStore) -> None:
    # Transfers lock and rewrite balances without reading the bank details: they stay.
    await store.create_accounts(
        [
            Account(id="bank", currency="EUR"),
            Account(id="m", currency="EUR", flags=NO_OVERDRAFT, bank_account=BANK),
        ],
        T,
        NOW,
    )
    t = Transfer(id="t1", debit_account_id="bank", credit_account_id="m", amount=5, currency="EUR")
    outcome = await store.create_transfers([t], T, NOW)
    assert [r.value for r in outcome.results] == ["ok"]
    found = await _one(store, "m")
    assert (found.credits_posted, found.bank_account) == (5, BANK)


async def test_the_migration_leaves_existing_accounts_without_bank_details(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db, MIGRATIONS, revision="0002")
        async with db.transaction() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO accounts (id, tenant_id, currency, debits_must_not_exceed_credits,"
                    " credits_must_not_exceed_debits, debits_pending, debits_posted,"
                    " credits_pending, credits_posted, code, metadata, created_at_us)"
                    " VALUES ('old', :t, 'EUR', true, false, 0, 0, 0, 0, 'merchant', '{}', 1)"
                ),
                {"t": T},
            )
        await upgrade(db, MIGRATIONS)
        store = SqlAccountsStore(db)
        assert (await _one(store, "old")).bank_account is None
        assert (await store.set_bank_account("old", T, BANK)).bank_account == BANK
    finally:
        await db.dispose()


# -- over gRPC ---------------------------------------------------------------------------

ALICE = Caller(tenant_id="ten_alice", client_id="cli_a")
MALLORY = Caller(tenant_id="ten_mallory", client_id="cli_m")
PB_BANK = pb.BankAccount(iban="de89 3704 0044 0532 0130 00", bic="cobadeffxxx", name=" Ex GmbH ")
PB_STORED = pb.BankAccount(iban="DE89370400440532013000", bic="COBADEFFXXX", name="Ex GmbH")


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[pb_grpc.AccountsAsyncStub]:
    settings = Settings(
        var_dir=tmp_path,
        accounts={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}",
            "listen": "127.0.0.1:0",
        },
    )
    await app.migrate(settings)
    runtime = app.create(settings, bus=InProcessBus())
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    try:
        yield pb_grpc.AccountsStub(channel)
    finally:
        await channel.close()
        await runtime.stop()


async def test_bank_details_over_grpc(stub: pb_grpc.AccountsAsyncStub) -> None:
    md = ALICE.metadata()
    opened = await stub.OpenAccount(
        pb.OpenAccountRequest(id="m", currency="EUR", code="merchant", bank_account=PB_BANK),
        metadata=md,
    )
    assert opened.bank_account == PB_STORED  # normalised
    plain = await stub.OpenAccount(pb.OpenAccountRequest(id="c", currency="EUR"), metadata=md)
    assert not plain.HasField("bank_account")
    found = await stub.LookupAccounts(pb.LookupAccountsRequest(ids=["m", "c"]), metadata=md)
    assert [a.HasField("bank_account") for a in found.accounts] == [True, False]
    replaced = pb.BankAccount(iban="GB82WEST12345698765432", bic="NWBKGB2L", name="Ex Ltd")
    set_ = await stub.SetBankAccount(
        pb.SetBankAccountRequest(account_id="c", bank_account=replaced), metadata=md
    )
    assert set_.bank_account == replaced
    removed = await stub.RemoveBankAccount(pb.RemoveBankAccountRequest(account_id="m"), metadata=md)
    assert not removed.HasField("bank_account")
    listed = await stub.ListAccounts(pb.ListAccountsRequest(), metadata=md)
    assert {a.id: a.bank_account.iban for a in listed.accounts} == {"c": replaced.iban, "m": ""}


@pytest.mark.parametrize(
    ("bank", "field"),
    [
        (pb.BankAccount(iban="DE89370400440532013001", bic="COBADEFF", name="x"), "iban"),
        (pb.BankAccount(iban="DE89370400440532013000", bic="CHASUS33", name="x"), "bic"),
        (pb.BankAccount(iban="DE89370400440532013000", bic="COBADEFF", name=""), "name"),
        (pb.BankAccount(), "iban"),
    ],
)
async def test_invalid_bank_details_are_invalid_argument_naming_the_field(
    stub: pb_grpc.AccountsAsyncStub, bank: pb.BankAccount, field: str
) -> None:
    md = ALICE.metadata()
    await stub.OpenAccount(pb.OpenAccountRequest(id="m", currency="EUR"), metadata=md)
    calls: list[tuple[Any, Any]] = [
        (stub.SetBankAccount, pb.SetBankAccountRequest(account_id="m", bank_account=bank)),
        (stub.OpenAccount, pb.OpenAccountRequest(id="n", currency="EUR", bank_account=bank)),
        (
            stub.CreateAccounts,
            pb.CreateAccountsRequest(
                accounts=[pb.Account(id="o", currency="EUR", bank_account=bank)]
            ),
        ),
    ]
    for method, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, metadata=md)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code(caught.value) == "invalid_bank_account"
        assert (caught.value.details() or "").startswith(f"bank_account.{field} ")
    found = await stub.LookupAccounts(pb.LookupAccountsRequest(ids=["m", "n", "o"]), metadata=md)
    assert [(a.id, a.HasField("bank_account")) for a in found.accounts] == [("m", False)]


async def test_another_tenants_account_is_not_found(stub: pb_grpc.AccountsAsyncStub) -> None:
    await stub.OpenAccount(
        pb.OpenAccountRequest(id="m", currency="EUR", bank_account=PB_BANK),
        metadata=ALICE.metadata(),
    )
    calls: list[tuple[Any, Any, Caller]] = [
        (
            stub.SetBankAccount,
            pb.SetBankAccountRequest(account_id="m", bank_account=PB_BANK),
            MALLORY,
        ),
        (stub.RemoveBankAccount, pb.RemoveBankAccountRequest(account_id="m"), MALLORY),
        (stub.RemoveBankAccount, pb.RemoveBankAccountRequest(account_id="nope"), ALICE),
    ]
    for method, request, caller in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await method(request, metadata=caller.metadata())
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_code(caught.value) == "account_not_found"
    found = await stub.LookupAccounts(
        pb.LookupAccountsRequest(ids=["m"]), metadata=ALICE.metadata()
    )
    assert found.accounts[0].bank_account == PB_STORED
