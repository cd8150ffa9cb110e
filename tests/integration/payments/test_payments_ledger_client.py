"""The payments service's ledger client against the real accounts service: accounts it
has seen are answered without a call; what it has not seen (or another tenant's) is asked;
lookups carry each account's bank details, as of now when asked `fresh`."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymesh.accounts import app as accounts_app
from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.payments.adapters import GrpcLedgerClient
from paymesh.payments.errors import TransientError
from paymesh.payments.ports import BankAccount, LedgerAccount
from paymesh.platform.bus import InProcessBus
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import open_channel
from paymesh.settings import Settings

ALICE = Caller(tenant_id="ten_alice", client_id="cli_alice")
BOB = Caller(tenant_id="ten_bob", client_id="cli_bob")
WALLET = LedgerAccount(id="acc_wallet", currency="EUR", code="wallet")


async def test_known_accounts_are_answered_without_a_call_unknown_ones_are_asked(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    admin = f"127.0.0.1:{ports['admin']}"
    settings = Settings(
        var_dir=tmp_path,
        accounts={"listen": f"127.0.0.1:{ports['accounts']}", "admin_listen": admin},
    )
    await accounts_app.migrate(settings)
    accounts = accounts_app.create(settings, bus=InProcessBus())
    await accounts.start()
    channel = open_channel(settings.accounts.target)
    ledger = GrpcLedgerClient(channel, deadline_s=0.5)
    other = GrpcLedgerClient(channel, deadline_s=0.5)  # only looks the account up
    try:
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == []  # not opened yet
        assert await ledger.create_accounts(ALICE, [WALLET]) == ["ok"]
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        assert await other.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
    finally:
        await accounts.stop()  # from here on, any call fails
    try:
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        assert await ledger.create_accounts(ALICE, [WALLET]) == ["exists"]
        with pytest.raises(TransientError):  # the same id, another tenant: asked
            await ledger.lookup_accounts(BOB, [WALLET.id])
        with pytest.raises(TransientError):  # one unknown among known ones: asked
            await ledger.lookup_accounts(ALICE, [WALLET.id, "acc_other"])
        with pytest.raises(TransientError):  # the same id with other fields: asked
            await ledger.create_accounts(ALICE, [LedgerAccount(WALLET.id, "EUR", "revenue")])
        assert await other.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        with pytest.raises(TransientError):  # a lookup does not say how it was opened
            await other.create_accounts(ALICE, [WALLET])
    finally:
        await channel.close()


async def test_lookups_carry_the_bank_details_and_a_fresh_lookup_sees_them_change(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    settings = Settings(
        var_dir=tmp_path,
        accounts={
            "listen": f"127.0.0.1:{ports['accounts']}",
            "admin_listen": f"127.0.0.1:{ports['admin']}",
        },
    )
    await accounts_app.migrate(settings)
    accounts = accounts_app.create(settings, bus=InProcessBus())
    await accounts.start()
    channel = open_channel(settings.accounts.target)
    stub = AccountsStub(channel)
    ledger = GrpcLedgerClient(channel, deadline_s=5)
    md = ALICE.metadata()
    bank = apb.BankAccount(iban="DE89 3704 0044 0532 0130 00", bic="cobadeff", name="Shop GmbH")
    try:
        await stub.OpenAccount(
            apb.OpenAccountRequest(
                id="acc_shop", currency="EUR", code="merchant", bank_account=bank
            ),
            metadata=md,
        )
        await stub.OpenAccount(apb.OpenAccountRequest(id="acc_plain", currency="EUR"), metadata=md)
        shop, plain = await ledger.lookup_accounts(ALICE, ["acc_shop", "acc_plain"])
        assert shop == LedgerAccount(
            id="acc_shop",
            currency="EUR",
            code="merchant",
            no_overdraft=True,
            bank_account=BankAccount("DE89370400440532013000", "COBADEFF", "Shop GmbH"),
        )
        assert plain.bank_account is None
        moved = apb.BankAccount(iban="GB82WEST12345698765432", bic="NWBKGB2L", name="Shop Ltd")
        await stub.SetBankAccount(
            apb.SetBankAccountRequest(account_id="acc_shop", bank_account=moved), metadata=md
        )
        # Remembered: as of the last lookup. Fresh: as of now (and remembered so).
        [cached] = await ledger.lookup_accounts(ALICE, ["acc_shop"])
        assert cached.bank_account == shop.bank_account
        [fresh] = await ledger.lookup_accounts(ALICE, ["acc_shop"], fresh=True)
        assert fresh.bank_account == BankAccount(moved.iban, moved.bic, moved.name)
        assert await ledger.lookup_accounts(ALICE, ["acc_shop"]) == [fresh]
        await stub.RemoveBankAccount(
            apb.RemoveBankAccountRequest(account_id="acc_shop"), metadata=md
        )
        [removed] = await ledger.lookup_accounts(ALICE, ["acc_shop"], fresh=True)
        assert removed.bank_account is None
        assert await ledger.lookup_accounts(BOB, ["acc_shop"], fresh=True) == []
    finally:
        await channel.close()
        await accounts.stop()
